"""Runs you can trust: failed clients' reasons on record, divergence warned about and stopped, marked in figures."""

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flwr.app import Array, ArrayRecord
from rich.console import Console

from fedsim.callbacks.progress import Progress
from fedsim.config import ConfigError
from fedsim.config.checks import FedsimWarning
from fedsim.divergence import Diverged, find_divergence, nonfinite_count
from fedsim.failures import FAILURES_FILE, load_failures
from fedsim.plan import build_plan
from fedsim.plots import NONFINITE_LABEL, plot_metric, plot_run
from fedsim.results import MetricsWriter, load, save_config, write_status
from fedsim.runner import execute
from tests.conftest import compose_config
from tests.test_results import failing_partitions


def nonfinite_markers(axis) -> list[tuple[str, float]]:
    """The vertical lines marking non-finite rounds: (legend label, its round) per marker."""
    return [
        (line.get_label(), line.get_xdata()[0])
        for line in axis.lines
        if line.get_linestyle() == ":" and len(set(line.get_xdata())) == 1
    ]


def test_every_failed_client_and_its_reason_is_in_failures_csv_and_the_progress_line(tmp_path, monkeypatch):
    failing_partitions(monkeypatch, {1, 3})
    plan = build_plan(compose_config("num_clients=4", "num_rounds=2"))
    output = io.StringIO()
    plan.callbacks = [
        Progress(Console(file=output, width=200)) if isinstance(c, Progress) else c for c in plan.callbacks
    ]
    execute(plan, tmp_path, quiet=False)
    failures = load_failures(tmp_path)
    assert list(failures.columns) == ["round", "stage", "client", "reason"]
    expected = [(r, stage, client) for r in (1, 2) for stage in ("train", "federated") for client in (1, 3)]
    assert sorted(failures[["round", "stage", "client"]].itertuples(index=False, name=None)) == sorted(expected)
    assert set(failures["reason"]) == {"RuntimeError: client down"}
    assert plan.history.failures_in(2)[0].reason == "RuntimeError: client down"
    lines = [line for line in output.getvalue().splitlines() if line.startswith("round")]
    assert len(lines) == 3
    assert "failed" not in lines[0]  # round 0: the initial model, no clients
    for line in lines[1:]:
        assert line.endswith("2 of 4 clients failed training  2 of 4 clients failed evaluation"), line


def test_a_run_without_failures_writes_no_failures_file(tmp_path):
    execute(build_plan(compose_config("num_clients=3", "num_rounds=1")), tmp_path, quiet=True)
    assert not (tmp_path / FAILURES_FILE).exists()
    assert load_failures(tmp_path).empty


def test_a_huge_learning_rate_diverges_with_one_warning_and_stops(tmp_path):
    plan = build_plan(compose_config("client.lr=100", "num_rounds=5"))
    with pytest.warns(FedsimWarning, match=r"diverged in round 1: .* the run stops") as warned, pytest.raises(
        Diverged
    ) as raised:
        execute(plan, tmp_path, quiet=True)
    assert len([w for w in warned if issubclass(w.category, FedsimWarning)]) == 1
    error = raised.value
    assert (error.round, error.what) == (1, "centralized loss") and math.isnan(error.value)
    assert str(error) == "the run diverged in round 1: the centralized test loss is nan."
    frame = pd.read_csv(tmp_path / "metrics.csv")  # the run did not complete (the runner's status is not ours)
    assert frame["round"].max() == 1  # the diverged round is on record, and nothing after it
    centralized = frame[(frame["stage"] == "centralized") & (frame["metric"] == "loss")].set_index("round")["value"]
    assert math.isfinite(centralized[0]) and math.isnan(centralized[1])
    weights = frame[frame["metric"] == "train_nonfinite_weights"]
    assert list(weights["round"]) == [1] and weights["value"].iloc[0] > 0


def test_without_stop_on_divergence_the_run_completes_with_its_non_finite_rows(tmp_path):
    plan = build_plan(compose_config("client.lr=100", "num_rounds=3", "stop_on_divergence=false"))
    with pytest.warns(FedsimWarning, match="the run goes on") as warned:
        summary = execute(plan, tmp_path, quiet=True)
    assert len([w for w in warned if issubclass(w.category, FedsimWarning)]) == 1  # the first round only
    frame = load(tmp_path)
    losses = frame[(frame["stage"] == "centralized") & (frame["metric"] == "loss")].set_index("round")["value"]
    assert list(losses.index) == [0, 1, 2, 3] and all(math.isnan(losses[r]) for r in (1, 2, 3))
    assert math.isnan(summary.final["train_loss"])
    accuracy, loss = plot_run_axes(tmp_path)
    for axis in (accuracy, loss):
        assert nonfinite_markers(axis) == [(NONFINITE_LABEL, 1), ("_nolegend_", 2), ("_nolegend_", 3)]
        assert NONFINITE_LABEL in [text.get_text() for text in axis.get_legend().get_texts()]


def plot_run_axes(run_dir: Path):
    """The accuracy and loss axes plot_run draws (its figure captured before it is saved)."""
    from matplotlib.figure import Figure

    captured = []
    original = Figure.savefig

    def capture(figure, *args, **kwargs):
        captured.append(figure)
        return original(figure, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", capture)
        plot_run(run_dir)
    return captured[0].axes[:2]


def test_plot_metric_marks_the_rounds_of_a_run_that_diverged(tmp_path):
    for number, (strategy, values) in enumerate((("fedavg", [2.3, 1.0, 0.5]), ("fedadam", [2.3, float("inf"), float("nan")]))):
        run_dir = tmp_path / str(number)
        save_config(run_dir, {"seed": 0}, {"strategy": strategy})
        writer = MetricsWriter(run_dir)
        writer.write([(r, "centralized", None, "loss", value) for r, value in enumerate(values)])
        writer.close()
        write_status(run_dir, "completed")
    axis = plot_metric(load(tmp_path), "loss", hue="strategy")
    fedadam = axis.lines[0]
    assert fedadam.get_label() == "fedadam (n=1)"
    np.testing.assert_array_equal(np.isfinite(fedadam.get_ydata()), [True, False, False])
    markers = nonfinite_markers(axis)
    assert markers == [(f"fedadam: {NONFINITE_LABEL}", 1), ("_nolegend_", 2)]
    assert all(line.get_color() == fedadam.get_color() for line in axis.lines if line.get_linestyle() == ":")
    assert f"fedadam: {NONFINITE_LABEL}" in [text.get_text() for text in axis.get_legend().get_texts()]


def test_the_checks_find_non_finite_losses_and_weights():
    assert find_divergence([(1, "centralized", None, "loss", 0.5), (1, "train", 3, "loss", math.nan)]) is None
    assert find_divergence([(1, "train", None, "loss", math.inf)]) == ("train loss", math.inf)
    assert find_divergence([(1, "system", None, "train_nonfinite_weights", 2.0)]) == ("weights", 2.0)
    record = ArrayRecord({"w": Array(np.array([1.0, np.nan, np.inf], dtype=np.float32)), "n": Array(np.array([3]))})
    assert nonfinite_count(record) == 2
    assert str(Diverged(4, "weights", 2.0)) == "the run diverged in round 4: the global model's weights hold 2 NaN or infinite values."


@pytest.mark.parametrize("lr", ["inf", "nan", "-inf", "0"])
def test_a_learning_rate_that_is_not_finite_and_positive_is_refused_before_training(lr):
    with pytest.raises(ConfigError) as raised:
        build_plan(compose_config(f"client.lr={lr}"))
    assert str(raised.value).startswith("client.lr must be greater than 0 and finite (got ")
