"""Statistics over seeds: per-run values, per-group summaries with t intervals, paired comparisons.

Every expected number is worked out by hand here (means, sample deviations, Student's t
quantiles from tables, p-values from the closed-form t CDF for 2 and 4 degrees of
freedom), never by calling the code under test.
"""

import math

import pytest

from fedsim.config import ConfigError
from fedsim.results import MetricsWriter, final_table, load, save_config, write_status
from fedsim.statistics import compare_methods, run_table, summary_table

T_975_2DOF = 4.302653  # Student's t, 0.975 quantile, 2 degrees of freedom (tables)
T_975_4DOF = 2.776445  # ... 4 degrees of freedom

# Centralized accuracy in rounds 0, 1, 2 and loss in round 1, 2 per (method, strategy, mu, seed).
RUNS = {
    ("fedprox_mu0.1", "fedprox", 0.1, 0): [0.10, 0.82, 0.80],
    ("fedprox_mu0.1", "fedprox", 0.1, 1): [0.10, 0.83, 0.84],
    ("fedprox_mu0.1", "fedprox", 0.1, 2): [0.10, 0.88, 0.86],
    ("fedavg", "fedavg", None, 0): [0.10, 0.79, 0.78],
    ("fedavg", "fedavg", None, 1): [0.10, 0.75, 0.80],
    ("fedavg", "fedavg", None, 2): [0.10, 0.85, 0.85],  # best: round 1 and 2 tie
    ("fedprox_mu1", "fedprox", 1.0, 0): [0.10, 0.70, 0.60],  # one seed only
}
LOSSES = {0: [0.9, 0.5], 1: [0.4, 0.6], 2: [0.7, 0.7]}  # by seed, rounds 1 and 2 (every method)


def write_run(run_dir, method, strategy, mu, seed, accuracies, losses):
    config = {"seed": seed, "method": method, "partitioner": {"alpha": 0.5, "seed": seed}}
    config["strategy"] = {"proximal_mu": mu} if mu is not None else {}
    save_config(run_dir, config, {"strategy": strategy, "dataset": "digits"})
    writer = MetricsWriter(run_dir)
    writer.write([(r, "centralized", None, "accuracy", value) for r, value in enumerate(accuracies)])
    writer.write([(r, "centralized", None, "loss", value) for r, value in enumerate(losses, start=1)])
    writer.write([(1, "centralized", 0, "accuracy", 0.0)])  # a per-client row: never part of the statistics
    writer.close()
    write_status(run_dir, "completed")


@pytest.fixture
def sweep(tmp_path):
    for number, ((method, strategy, mu, seed), accuracies) in enumerate(RUNS.items()):
        write_run(tmp_path / str(number), method, strategy, mu, seed, accuracies, LOSSES[seed])
    return tmp_path


def sample_std(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))


def p_two_sided_2dof(t):
    """The two-sided p-value of Student's t with 2 dof: its CDF is 1/2 + t / (2 sqrt(2 + t^2))."""
    return 1 - abs(t) / math.sqrt(2 + t * t)


def p_two_sided_4dof(t):
    """With 4 dof: CDF = 1/2 + 3/4 x (1 - x^2 / 3), x = t / sqrt(4 + t^2)."""
    x = abs(t) / math.sqrt(4 + t * t)
    return 2 * (1 - (0.5 + 0.75 * x * (1 - x * x / 3)))


def test_final_table_still_gives_one_row_per_run(sweep):
    final = final_table(load(sweep))
    assert len(final) == 7
    assert sorted(final["accuracy"]) == sorted(values[-1] for values in RUNS.values())
    assert set(final["round"]) == {2}


def test_run_table_takes_each_runs_final_or_best_round(sweep):
    frame = load(sweep)
    final = run_table(frame, "accuracy", at="final").set_index(["method", "seed"])
    assert final.loc[("fedavg", 1), "accuracy"] == 0.80 and final.loc[("fedavg", 1), "round"] == 2
    best = run_table(frame, "accuracy", at="best").set_index(["method", "seed"])
    assert best.loc[("fedavg", 1), "accuracy"] == 0.80  # round 2 beats round 1 (0.75)
    assert best.loc[("fedprox_mu0.1", 0), "accuracy"] == 0.82 and best.loc[("fedprox_mu0.1", 0), "round"] == 1
    assert best.loc[("fedavg", 2), "round"] == 1  # a tie goes to the earliest round
    # Lower is better for a loss: its best round is the lowest.
    loss = run_table(frame, "loss", at="best").set_index(["method", "seed"])
    assert loss.loc[("fedavg", 0), "loss"] == 0.5 and loss.loc[("fedavg", 1), "loss"] == 0.4
    assert run_table(frame, "loss", at="best", higher=True).set_index(["method", "seed"]).loc[("fedavg", 0), "loss"] == 0.9


def test_summary_table_gives_n_mean_sample_std_and_a_t_interval_per_method(sweep):
    table = summary_table(load(sweep), "accuracy", stage="centralized", by="method", at="final")
    assert list(table.index) == ["fedavg", "fedprox_mu0.1", "fedprox_mu1"]
    assert list(table.columns) == ["n", "mean", "std", "ci_low", "ci_high"]
    # fedprox_mu0.1: 0.80, 0.84, 0.86
    mean = (0.80 + 0.84 + 0.86) / 3
    std = math.sqrt(((0.80 - mean) ** 2 + (0.84 - mean) ** 2 + (0.86 - mean) ** 2) / 2)
    assert std == pytest.approx(0.0305505, abs=1e-7)  # sqrt(7 / 7500)
    half = T_975_2DOF * std / math.sqrt(3)
    assert half == pytest.approx(0.0758916, abs=1e-6)
    row = table.loc["fedprox_mu0.1"]
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(0.8333333, abs=1e-7)
    assert row["std"] == pytest.approx(std, rel=1e-9)
    assert row["ci_low"] == pytest.approx(mean - half, abs=1e-6)
    assert row["ci_high"] == pytest.approx(mean + half, abs=1e-6)
    # fedavg: 0.78, 0.80, 0.85: mean 0.81, deviations -0.03, -0.01, 0.04, variance 0.0026 / 2
    row = table.loc["fedavg"]
    assert row["mean"] == pytest.approx(0.81) and row["std"] == pytest.approx(math.sqrt(0.0013))
    assert row["ci_high"] - row["mean"] == pytest.approx(T_975_2DOF * math.sqrt(0.0013 / 3), abs=1e-6)
    # One run: no spread, no interval.
    row = table.loc["fedprox_mu1"]
    assert row["n"] == 1 and row["mean"] == 0.60
    assert math.isnan(row["std"]) and math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])


def test_summary_table_at_the_best_round_and_at_another_confidence(sweep):
    table = summary_table(load(sweep), at="best", confidence=0.9)
    best = [0.82, 0.84, 0.88]  # fedprox_mu0.1's best rounds
    mean = sum(best) / 3
    assert table.loc["fedprox_mu0.1", "mean"] == pytest.approx(mean)
    assert table.loc["fedprox_mu0.1", "std"] == pytest.approx(sample_std(best))
    t_95_2dof = 2.919986  # 0.95 quantile, 2 dof (tables)
    assert table.loc["fedprox_mu0.1", "ci_high"] == pytest.approx(mean + t_95_2dof * sample_std(best) / math.sqrt(3), abs=1e-6)
    assert table.loc["fedavg", "mean"] == pytest.approx((0.79 + 0.80 + 0.85) / 3)


def test_summary_table_warns_once_when_a_group_pools_different_configs(sweep):
    frame = load(sweep)
    with pytest.warns(UserWarning) as caught:
        table = summary_table(frame, by="strategy")
    assert [str(warning.message) for warning in caught] == [
        "by strategy: 'fedprox' pools runs whose configs differ in method (fedprox_mu0.1, fedprox_mu1) and "
        "strategy.proximal_mu (0.1, 1); add them to by or filter with where"
    ]
    assert table.loc["fedprox", "n"] == 4
    several = summary_table(frame, by="strategy,strategy.proximal_mu")
    assert several.loc[("fedprox", 1.0), "n"] == 1 and several.loc[("fedprox", 0.1), "n"] == 3


def test_compare_methods_pairs_runs_by_seed(sweep):
    frame = load(sweep)
    with pytest.warns(UserWarning) as caught:
        result = compare_methods(frame, "fedprox_mu0.1", "fedavg", metric="accuracy", at="final")
    # Differences per seed: 0.80 - 0.78, 0.84 - 0.80, 0.86 - 0.85 = 0.02, 0.04, 0.01.
    differences = [0.02, 0.04, 0.01]
    mean = sum(differences) / 3
    error = sample_std(differences) / math.sqrt(3)  # sqrt(7) / 300
    assert error == pytest.approx(math.sqrt(7) / 300)
    t = mean / error  # (7 / 300) / (sqrt(7) / 300) = sqrt(7)
    assert t == pytest.approx(math.sqrt(7))
    assert result.n == 3 and result.seeds == (0, 1, 2)
    assert result.mean_difference == pytest.approx(0.0233333, abs=1e-7)
    assert result.std_difference == pytest.approx(sample_std(differences))
    assert result.t == pytest.approx(2.6457513, abs=1e-6)
    assert result.p_value == pytest.approx(p_two_sided_2dof(t), abs=1e-9)
    assert result.p_value == pytest.approx(1 - math.sqrt(7) / 3, abs=1e-9)  # 0.118083
    assert result.ci_low == pytest.approx(mean - T_975_2DOF * error, abs=1e-6)
    assert result.ci_high == pytest.approx(mean + T_975_2DOF * error, abs=1e-6)
    assert list(result.pairs.columns) == ["fedprox_mu0.1", "fedavg", "difference"]
    assert result.pairs["difference"].tolist() == pytest.approx(differences)
    assert [str(warning.message) for warning in caught] == [
        f"3 seeds give little power: with 2 degrees of freedom the 95% CI of the difference spans "
        f"±{T_975_2DOF * error:.3g}, so a real difference smaller than that easily goes unseen; run 5 or more seeds."
    ]
    assert str(result).startswith("fedprox_mu0.1 - fedavg (final accuracy, 3 paired seeds): mean difference +0.0233, ")


def test_compare_methods_at_the_best_round(sweep):
    with pytest.warns(UserWarning, match="3 seeds give little power"):
        result = compare_methods(load(sweep), "fedprox_mu0.1", "fedavg", at="best")
    # Best rounds: 0.82, 0.84, 0.88 against 0.79, 0.80, 0.85: differences 0.03, 0.04, 0.03,
    # mean 1/30, standard error 1/300, t = 10.
    assert result.mean_difference == pytest.approx(1 / 30)
    assert result.t == pytest.approx(10)
    assert result.p_value == pytest.approx(1 - 10 / math.sqrt(102), abs=1e-9)  # 0.0098525
    assert result.ci_high - result.mean_difference == pytest.approx(T_975_2DOF / 300, abs=1e-7)


def test_five_seeds_give_no_power_warning(tmp_path, recwarn):
    finals = {"a": [0.80, 0.82, 0.84, 0.86, 0.83], "b": [0.79, 0.80, 0.84, 0.83, 0.80]}
    for method, values in finals.items():
        for seed, value in enumerate(values):
            write_run(tmp_path / f"{method}{seed}", method, "fedavg", None, seed, [0.1, value], [1.0])
    result = compare_methods(load(tmp_path), "a", "b")
    assert not recwarn.list
    differences = [0.01, 0.02, 0.00, 0.03, 0.03]
    mean, error = 0.018, math.sqrt(170e-6 / 5)  # sum of squared deviations 680e-6, over 4
    assert result.mean_difference == pytest.approx(mean)
    assert result.std_difference == pytest.approx(sample_std(differences))
    assert result.t == pytest.approx(mean / error)
    assert result.p_value == pytest.approx(p_two_sided_4dof(mean / error), abs=1e-9)
    assert result.ci_low == pytest.approx(mean - T_975_4DOF * error, abs=1e-6)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ("fedprox_mu0.1", "fedprox_mu1", "method 'fedprox_mu0.1' and 'fedprox_mu1' share 1 seed (0); a paired comparison needs at least 2."),
        ("fedavg", "scaffold", "method 'scaffold' has no run with a seed here; method is fedavg, fedprox_mu0.1 or fedprox_mu1 in these runs."),
        ("fedavg", "fedavg", "compare two different method values (got 'fedavg' twice)."),
    ],
    ids=["one shared seed", "unknown method", "same method"],
)
def test_compare_methods_refuses_in_one_sentence(sweep, a, b, message):
    with pytest.raises(ConfigError) as error:
        compare_methods(load(sweep), a, b)
    assert str(error.value) == message


def test_compare_methods_refuses_two_runs_of_one_seed(sweep):
    with pytest.raises(ConfigError, match=r"^strategy 'fedprox' has several runs with seed 0; keep one run per seed"):
        compare_methods(load(sweep), "fedprox", "fedavg", by="strategy")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: summary_table(f, by="algo"), "by 'algo' is not a config key of these runs; some available keys: method, "),
        (lambda f: summary_table(f, at="last"), "at must be final or best (got 'last')."),
        (lambda f: summary_table(f, "acc"), "metric 'acc' is not recorded for stage 'centralized' in these runs; available: accuracy, loss."),
        (lambda f: summary_table(f, confidence=95), "confidence must be between 0 and 1, such as 0.95 (got 95)."),
    ],
    ids=["by", "at", "metric", "confidence"],
)
def test_summary_table_bad_input_is_one_sentence(sweep, call, message):
    with pytest.raises(ConfigError) as error:
        call(load(sweep))
    assert str(error.value).startswith(message)
