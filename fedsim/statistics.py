"""Statistics over seeds: each run's final or best value, per-group summaries, paired comparisons.

``run_table`` reduces each loaded run (``fedsim.results.load``) to one value, at its
last round or its best; ``summary_table`` gives per group of runs (``by``) the mean, the
sample deviation and a Student's t interval of the mean; ``compare_methods`` pairs two
groups' runs by seed for a paired t-test. scipy is imported only when a quantile or a
p-value is needed.
"""

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from fedsim.config.checks import ConfigError
from fedsim.config_values import format_value, is_missing, join_values, sort_key, values_equal
from fedsim.grouping import check_keys, group_runs, pooling_message, split_keys
from fedsim.results import METHOD, metric_stage

AT = ("final", "best")
# Metrics where lower is better, by a word in their name; every other metric: higher is better.
LOWER_IS_BETTER = ("loss", "std", "epsilon", "seconds", "bytes", "fail")


def higher_is_better(metric: str) -> bool:
    """Whether a larger ``metric`` is better: False for losses, spreads, epsilon, time, bytes and failures."""
    return not any(word in metric for word in LOWER_IS_BETTER)


def run_table(
    frame: pd.DataFrame,
    metric: str = "accuracy",
    stage: str = "centralized",
    at: str = "final",
    higher: bool | None = None,
) -> pd.DataFrame:
    """Each run's aggregate ``metric`` at its last round (``at="final"``) or its best (``at="best"``), with its config.

    One row per run, as ``final_table``: ``round`` is the round the value is from. The
    best round is the one with the highest value, or the lowest for a metric where lower
    is better (``higher_is_better(metric)``, or ``higher``); ties go to the earliest.
    Raises ConfigError for a metric or stage the runs do not record, or another ``at``.
    """
    if at not in AT:
        raise ConfigError(f"at must be {' or '.join(AT)} (got '{at}').")
    metric_stage(frame, metric, stage)
    chosen = frame[(frame["stage"] == stage) & (frame["metric"] == metric) & frame["client"].isna()]
    chosen = chosen[chosen["value"].notna()]
    if at == "final":
        index = chosen.groupby("run", sort=False)["round"].idxmax()
    else:
        values = chosen.groupby("run", sort=False)["value"]
        index = values.idxmax() if (higher_is_better(metric) if higher is None else higher) else values.idxmin()
    picked = chosen.loc[index.sort_values()]
    return picked.drop(columns=["stage", "client", "metric"]).rename(columns={"value": metric}).reset_index(drop=True)


def _t_quantile(confidence: float, dof):
    from scipy.stats import t

    return t.ppf((1 + confidence) / 2, dof)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be between 0 and 1, such as 0.95 (got {confidence}).")


def _warn_pooling(
    values: pd.DataFrame, metric: str, keys: Sequence[str], name: str, runs: Sequence[str] | None = None
) -> None:
    """Warn once if a group of ``run_table``'s rows pools runs of different configs (only groups holding ``runs``)."""
    config = values.drop(columns=[metric])
    groups = group_runs(config, keys)
    if runs is not None:
        groups = {label: members for label, members in groups.items() if set(members) & set(runs)}
    message = pooling_message(config, groups, name, "by or filter with where")
    if message:
        warnings.warn(message, UserWarning, stacklevel=3)


def summary_table(
    frame: pd.DataFrame,
    metric: str = "accuracy",
    stage: str = "centralized",
    by: str | Sequence[str] | None = METHOD,
    at: str = "final",
    confidence: float = 0.95,
    higher: bool | None = None,
) -> pd.DataFrame:
    """Per group of runs (seeds), the final or best ``metric``: n, mean, std and a confidence interval of the mean.

    Parameters
    ----------
    frame : pandas.DataFrame
        What ``load`` returns.
    metric, stage : str
        The aggregate metric and its stage (default: centralized accuracy).
    by : str or list of str, optional
        The config keys that make a group (``"method"``, ``"strategy,strategy.proximal_mu"``,
        ``["method", "partitioner.alpha"]``); None: all runs in one group. A group whose
        runs differ in a config value other than the seed gives one warning naming it.
    at : "final" or "best"
        Each run's value at its last round, or at its best round (see ``run_table``).
    confidence : float
        Coverage of the interval (0.95).
    higher : bool, optional
        Whether higher is better for ``at="best"``; by default from the metric's name.

    Returns
    -------
    pandas.DataFrame
        Indexed by the ``by`` values; columns ``n`` (runs), ``mean``, ``std`` (sample
        standard deviation, ddof=1), ``ci_low`` and ``ci_high``: mean ± t * std / sqrt(n),
        with t the (1 + confidence) / 2 quantile of Student's t with n - 1 degrees of
        freedom (NaN for a group of one run).
    """
    _check_confidence(confidence)
    keys = split_keys(by)
    check_keys(frame, keys, "by")
    values = run_table(frame, metric, stage, at, higher)
    _warn_pooling(values, metric, keys, f"by {','.join(keys)}" if keys else "no by")
    grouped = values.groupby(keys, dropna=False, sort=True) if keys else values.assign(runs="all").groupby("runs")
    table = grouped[metric].agg(n="count", mean="mean", std="std")
    half = _t_quantile(confidence, table["n"] - 1) * table["std"] / table["n"] ** 0.5
    table["ci_low"], table["ci_high"] = table["mean"] - half, table["mean"] + half
    return table


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of two groups of runs over the seeds they share (``compare_methods``)."""

    a: str
    b: str
    metric: str
    at: str
    n: int  # pairs (seeds)
    seeds: tuple
    mean_difference: float  # mean of a - b over the seeds
    std_difference: float  # sample standard deviation of a - b (ddof=1)
    ci_low: float
    ci_high: float
    t: float  # paired t statistic, n - 1 degrees of freedom
    p_value: float  # two-sided
    confidence: float = 0.95
    pairs: pd.DataFrame = field(default=None, repr=False, compare=False)  # per seed: a, b and a - b

    def __str__(self) -> str:
        return (
            f"{self.a} - {self.b} ({self.at} {self.metric}, {self.n} paired seeds): "
            f"mean difference {self.mean_difference:+.4f}, {self.confidence:.0%} CI "
            f"[{self.ci_low:+.4f}, {self.ci_high:+.4f}], t = {self.t:.3f} ({self.n - 1} dof), p = {self.p_value:.3g}"
        )


def compare_methods(
    frame: pd.DataFrame,
    a: object,
    b: object,
    metric: str = "accuracy",
    stage: str = "centralized",
    by: str = METHOD,
    at: str = "final",
    confidence: float = 0.95,
    higher: bool | None = None,
) -> Comparison:
    """A paired comparison of ``a`` and ``b`` (values of ``by``) over the seeds both have.

    Runs are paired by ``seed``: the difference a - b of each seed's final (or best)
    ``metric``, its mean, the mean's confidence interval (Student's t, n - 1 degrees of
    freedom), the paired t statistic and its two-sided p-value. Fewer than 2 shared
    seeds, or two runs of one side with the same seed, is a ConfigError; fewer than 5
    pairs gives one warning that so few seeds have little power.
    """
    _check_confidence(confidence)
    check_keys(frame, [by], "by")
    if "seed" not in frame.columns:
        raise ConfigError("runs are paired by seed, and these runs have no seed column.")
    if values_equal(a, b):
        raise ConfigError(f"compare two different {by} values (got '{format_value(a)}' twice).")
    values = run_table(frame, metric, stage, at, higher)
    values = values[values["seed"].map(lambda seed: not is_missing(seed))]
    sides, runs = {}, []
    for name in (a, b):
        rows = values[values[by].map(lambda value, name=name: values_equal(value, name))]
        if rows.empty:
            available = join_values(values[by])
            raise ConfigError(
                f"{by} '{format_value(name)}' has no run with a seed here; {by} is {available} in these runs."
            )
        repeated = rows["seed"][rows["seed"].duplicated()]
        if not repeated.empty:
            seed = format_value(repeated.iloc[0])
            raise ConfigError(
                f"{by} '{format_value(name)}' has several runs with seed {seed}; keep one run per seed "
                f"(filter with where, or compare by a finer key)."
            )
        sides[format_value(name)] = rows.set_index("seed")[metric]
        runs.extend(rows["run"])
    _warn_pooling(values, metric, [by], f"by {by}", runs=runs)
    a_name, b_name = format_value(a), format_value(b)
    shared = sorted(set(sides[a_name].index) & set(sides[b_name].index), key=sort_key)
    if len(shared) < 2:
        listed = f" ({', '.join(map(format_value, shared))})" if shared else ""
        raise ConfigError(
            f"{by} '{a_name}' and '{b_name}' share {len(shared)} seed{'s' if len(shared) != 1 else ''}{listed}; "
            f"a paired comparison needs at least 2."
        )
    pairs = pd.DataFrame({a_name: sides[a_name].loc[shared], b_name: sides[b_name].loc[shared]})
    pairs.index.name = "seed"
    pairs["difference"] = pairs[a_name] - pairs[b_name]
    n = len(pairs)
    mean, std = float(pairs["difference"].mean()), float(pairs["difference"].std(ddof=1))
    error = std / math.sqrt(n)
    half = float(_t_quantile(confidence, n - 1)) * error
    if error > 0:
        from scipy.stats import t as student_t

        t_statistic = mean / error
        p_value = float(2 * student_t.sf(abs(t_statistic), n - 1))
    else:  # every pair differs by the same amount
        t_statistic = math.nan if mean == 0 else math.copysign(math.inf, mean)
        p_value = math.nan if mean == 0 else 0.0
    if n < 5:
        warnings.warn(
            f"{n} seeds give little power: with {n - 1} degrees of freedom the {confidence:.0%} CI of the "
            f"difference spans ±{half:.3g}, so a real difference smaller than that easily goes unseen; "
            f"run 5 or more seeds.",
            UserWarning,
            stacklevel=2,
        )
    return Comparison(
        a=a_name, b=b_name, metric=metric, at=at, n=n, seeds=tuple(shared), mean_difference=mean,
        std_difference=std, ci_low=mean - half, ci_high=mean + half, t=t_statistic, p_value=p_value,
        confidence=confidence, pairs=pairs,
    )
