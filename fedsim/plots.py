"""Figures drawn from results files only: one run's rounds, runs compared, client spread."""

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fedsim.config.checks import ConfigError
from fedsim.grouping import check_keys, group_runs, pooling_message, split_keys
from fedsim.results import (  # metric_stage lived here: plots.metric_stage still works
    METHOD,
    load,
    metric_stage,
    round_table,
    run_columns,
)

FIGURE_FILE = "rounds.png"
STAGE_LABELS = {
    "centralized": "centralized (test split)",
    "federated": "federated (clients' data)",
    "train": "local training",
}
FIGURE_FORMATS = (".png", ".pdf", ".svg")
# Rounds with a non-finite value (a diverged run) get a dotted vertical line, named in the legend by
NONFINITE_LABEL = "non-finite (diverged)"
NONFINITE_STYLE = {"linestyle": ":", "linewidth": 1.2, "alpha": 0.8}


def _new_axis(figsize: tuple[float, float] = (6, 4)):
    """An axis on a figure of its own, outside pyplot: no display needed, the session's backend untouched."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained").subplots()


def nonfinite_rounds(rows: pd.DataFrame) -> list[int]:
    """The rounds of ``rows`` (results rows) holding a NaN or infinite value, or a ``train_nonfinite_weights`` row."""
    values = rows["value"].to_numpy(dtype=float)
    flagged = ~np.isfinite(values) | ((rows["metric"] == "train_nonfinite_weights").to_numpy() & (values > 0))
    return sorted(int(r) for r in rows.loc[flagged, "round"].unique())


def mark_nonfinite(axis, rounds: Sequence[int], label: str = NONFINITE_LABEL, color: str = "tab:red") -> None:
    """A dotted vertical line at each of ``rounds``, named once in the legend by ``label``."""
    for number, server_round in enumerate(rounds):
        axis.axvline(server_round, color=color, label=label if number == 0 else "_nolegend_", **NONFINITE_STYLE)


def plot_run(run_dir: str | Path) -> Path:
    """Draw accuracy and loss per round (centralized and federated) into ``rounds.png``.

    A private run gets a third panel: the epsilon spent by each round. Rounds whose loss,
    accuracy or global weights were not finite (a diverged run) are marked on both panels
    with a dotted red line, ``non-finite (diverged)`` in the legend, instead of vanishing
    from the curves.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    run_dir = Path(run_dir)
    frame = load(run_dir, incomplete=True)  # a run's own figure, whatever its status
    table = round_table(frame)
    columns = run_columns(run_dir)
    private = "train_epsilon" in table
    aggregates = frame[frame["client"].isna()]
    diverged = nonfinite_rounds(
        aggregates[
            aggregates["stage"].isin(list(STAGE_LABELS)) & aggregates["metric"].isin(["accuracy", "loss"])
            | (aggregates["metric"] == "train_nonfinite_weights")
        ]
    )
    figure = Figure(figsize=(15 if private else 10, 3.8), layout="constrained")
    axes = figure.subplots(1, 3 if private else 2)
    for axis, metric in zip(axes, ("accuracy", "loss")):
        for stage, label in STAGE_LABELS.items():
            column = f"{stage}_{metric}"
            if column in table:
                series = table[column].dropna()
                series = series[np.isfinite(series)]
                axis.plot(series.index, series.values, marker=".", label=label)
        mark_nonfinite(axis, diverged)
        axis.set_ylabel(metric)
        axis.legend()
    if private:
        epsilon = axes[2]
        for column, label, style in (("train_epsilon", "largest over clients", "-"),
                                     ("train_epsilon_mean", "mean over clients", "--")):
            if column in table:
                series = table[column].dropna()
                series = series[np.isfinite(series)]
                epsilon.plot(series.index, series.values, style, marker=".", label=label)
        delta = columns.get("privacy.target_delta")
        epsilon.set_ylabel(f"epsilon spent (delta = {delta})")
        if "train_epsilon_mean" in table:
            epsilon.legend()
    for axis in axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("round")
        axis.grid(alpha=0.3)
    named = [str(columns[group]) for group in ("strategy", "dataset", "partitioner", "model", "privacy") if group in columns]
    if columns.get(METHOD) not in (None, columns.get("strategy")):
        named.insert(0, str(columns[METHOD]))
    figure.suptitle(" · ".join(named) if named else run_dir.name)
    path = run_dir / FIGURE_FILE
    figure.savefig(path, dpi=120)
    return path


def hue_keys(frame: pd.DataFrame, hue: str | Sequence[str] | None) -> list[str]:
    """The config keys of ``hue`` (commas separate several); the default ``method`` falls back to
    ``strategy`` for a frame without a method column."""
    keys = split_keys(hue)
    if keys == [METHOD] and METHOD not in frame.columns:
        keys = ["strategy"] if "strategy" in frame.columns else []
    return keys


def check_hue(frame: pd.DataFrame, hue: str | Sequence[str] | None) -> None:
    """Raise ConfigError, listing some keys that exist, if a key of ``hue`` is not a config key of the runs."""
    check_keys(frame, split_keys(hue), "hue")


def plot_metric(
    frame: pd.DataFrame,
    metric: str,
    stage: str | None = None,
    hue: str | Sequence[str] | None = METHOD,
    axis=None,
):
    """Per-round curves of an aggregate metric: the mean over the runs of each ``hue`` group, ± std.

    Non-finite values (a diverged run's NaN or inf) are left out of the mean and marked
    instead: a dotted vertical line in the curve's colour at each such round, labelled
    ``LABEL: non-finite (diverged)`` in the legend.

    Parameters
    ----------
    frame : pandas.DataFrame
        What ``fedsim.results.load`` returns, for one run or many.
    metric : str
        A recorded metric, such as ``accuracy``, ``loss`` or ``accuracy_std``.
    stage : str, optional
        ``centralized``, ``federated``, ``train`` or ``system``; by default the first of
        these that records ``metric``.
    hue : str or list of str, optional
        Config keys whose values make a curve: ``"method"`` (the default: the method's
        label, else the strategy), ``"partitioner.alpha"``, or several, as a list or
        comma-separated: ``"strategy,strategy.proximal_mu"``. A curve's label joins the
        keys its runs have (``fedprox, proximal_mu=0.1``; ``fedavg``; see
        ``fedsim.grouping.group_label``). Runs sharing the values (such as seeds) are
        averaged, with a band of one standard deviation across them; when they differ in
        any other config value but the seed, one warning names the curve and the keys.
        None: all runs make one curve.
    axis : matplotlib Axes, optional
        Where to draw (in a notebook: ``plt.subplots()``'s); by default an axis on a new
        figure outside pyplot, for ``save_figure``.

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.ticker import MaxNLocator

    stage = metric_stage(frame, metric, stage)
    keys = hue_keys(frame, hue)
    check_hue(frame, keys)
    if axis is None:
        axis = _new_axis()
    rows = frame[(frame["stage"] == stage) & (frame["metric"] == metric) & frame["client"].isna()]
    runs = rows.drop_duplicates("run")
    groups = group_runs(runs, keys)
    name = f"hue {','.join(keys)}" if keys else "no hue"
    message = pooling_message(runs, groups, name, "--hue or filter with --where")
    if message:
        warnings.warn(message, UserWarning, stacklevel=2)
    for label, members in groups.items():
        group = rows[rows["run"].isin(members)]
        per_run = group.pivot_table(index="round", columns="run", values="value", aggfunc="first", dropna=False)
        per_run = per_run.where(np.isfinite(per_run))  # a diverged run's NaN and inf: marked, not averaged
        mean, std = per_run.mean(axis=1), per_run.std(axis=1)
        line = axis.plot(mean.index, mean.values, marker=".", label=f"{label} (n={per_run.shape[1]})")[0]
        if per_run.shape[1] > 1:
            axis.fill_between(mean.index, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
        if diverged := nonfinite_rounds(group):
            mark_nonfinite(axis, diverged, f"{label}: {NONFINITE_LABEL}", line.get_color())
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set(xlabel="round", ylabel=metric, title=f"{metric} ({stage})")
    axis.grid(alpha=0.3)
    axis.legend(title=", ".join(keys) if keys else None)
    return axis


def plot_client_distribution(frame: pd.DataFrame, metric: str = "accuracy", stage: str = "federated", axis=None):
    """Box plot per round of every participating client's ``metric`` (pooled over the runs in ``frame``)."""
    stage = metric_stage(frame, metric, stage, clients=True)
    if axis is None:
        axis = _new_axis()
    rows = frame[(frame["stage"] == stage) & (frame["metric"] == metric) & frame["client"].notna()]
    rounds = sorted(rows["round"].unique())
    values = [rows.loc[rows["round"] == r, "value"].to_numpy() for r in rounds]
    axis.boxplot(values, positions=rounds, widths=0.6)
    axis.set(xlabel="round", ylabel=f"client {metric}", title=f"client {metric} per round ({stage})")
    axis.grid(alpha=0.3)
    return axis


def check_figure_path(out: str | Path) -> Path:
    """``out`` as a Path; ConfigError unless its suffix is a figure format fedsim writes."""
    out = Path(out)
    if out.suffix.lower() not in FIGURE_FORMATS:
        raise ConfigError(f"the figure file must end in {', '.join(FIGURE_FORMATS)} (got '{out}').")
    return out


def save_figure(axis, out: str | Path) -> Path:
    """Write the figure holding ``axis`` to ``out`` (PNG, PDF or SVG, by its suffix)."""
    out = check_figure_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    axis.get_figure().savefig(out, dpi=120)
    return out
