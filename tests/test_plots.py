"""Figures from results files: curves with mean ± std bands by a config key, client spread, fedsim-plot."""

import math
import subprocess
import sys

import numpy as np
import pytest

from fedsim.config import ConfigError
from fedsim.plot_cli import main
from fedsim.plots import plot_client_distribution, plot_metric
from fedsim.results import MetricsWriter, load, save_config, write_status

# Centralized accuracy of rounds 0 and 1 per (strategy, seed).
ACCURACIES = {
    ("fedavg", 0): [0.1, 0.5],
    ("fedavg", 1): [0.1, 0.7],
    ("fedadam", 0): [0.2, 0.8],
    ("fedadam", 1): [0.2, 0.6],
}
# Per-client federated accuracy in rounds 1 and 2 (every run has the same).
CLIENT_ACCURACIES = {1: [0.2, 0.4, 0.9], 2: [0.5, 0.6]}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    for number, ((strategy, seed), values) in enumerate(ACCURACIES.items()):
        run_dir = root / str(number)
        save_config(run_dir, {"seed": seed, "partitioner": {"alpha": 0.5}}, {"strategy": strategy, "dataset": "digits"})
        writer = MetricsWriter(run_dir)
        writer.write([(r, "centralized", None, "accuracy", value) for r, value in enumerate(values)])
        writer.write(
            (r, "federated", client, "accuracy", value)
            for r, values in CLIENT_ACCURACIES.items()
            for client, value in enumerate(values)
        )
        writer.close()
        write_status(run_dir, "completed")
    return root


def test_curves_are_the_mean_over_runs_of_each_hue_value_with_a_std_band(sweep):
    axis = plot_metric(load(sweep), "accuracy", hue="strategy")
    assert [text.get_text() for text in axis.get_legend().get_texts()] == ["fedadam (n=2)", "fedavg (n=2)"]
    assert axis.get_legend().get_title().get_text() == "strategy"
    fedadam, fedavg = axis.lines
    np.testing.assert_allclose(fedadam.get_ydata(), [0.2, 0.7])
    np.testing.assert_allclose(fedavg.get_ydata(), [0.1, 0.6])
    std = math.sqrt((0.1**2 + 0.1**2) / 1)  # sample std of 0.8 and 0.6
    band = axis.collections[0].get_paths()[0].vertices
    assert band[:, 1].max() == pytest.approx(0.7 + std)
    assert band[:, 1].min() == pytest.approx(0.2)  # round 0: both seeds start at 0.2


def test_a_numeric_hue_and_no_hue(sweep):
    frame = load(sweep)
    with pytest.warns(UserWarning, match="hue seed: 'seed=0' and 'seed=1' pool runs whose configs differ in method"):
        by_seed = plot_metric(frame, "accuracy", stage="centralized", hue="seed")
    assert [text.get_text() for text in by_seed.get_legend().get_texts()] == ["seed=0 (n=2)", "seed=1 (n=2)"]
    np.testing.assert_allclose(by_seed.lines[0].get_ydata(), [0.15, 0.65])  # seed 0: fedavg and fedadam
    with pytest.warns(UserWarning, match="no hue: 'all runs' pools runs"):
        pooled = plot_metric(frame, "accuracy", hue=None)
    assert len(pooled.lines) == 1
    np.testing.assert_allclose(pooled.lines[0].get_ydata(), [0.15, 0.65])


def test_the_default_hue_is_the_method_label(sweep, recwarn):
    axis = plot_metric(load(sweep), "accuracy")  # these runs have no method: their strategy labels them
    assert [text.get_text() for text in axis.get_legend().get_texts()] == ["fedadam (n=2)", "fedavg (n=2)"]
    assert axis.get_legend().get_title().get_text() == "method"
    assert not recwarn.list  # seeds only: nothing pooled


@pytest.fixture(scope="module")
def methods(tmp_path_factory):
    """Method-labelled runs: fedavg, FedProx at three mu, two seeds each, at two Dirichlet alphas."""
    root = tmp_path_factory.mktemp("methods")
    number = 0
    for alpha in (0.1, 1.0):
        for method, mu in [("fedavg", None), ("fedprox_mu0.01", 0.01), ("fedprox_mu0.1", 0.1), ("fedprox_mu1", 1)]:
            for seed in (0, 1):
                strategy = {"_target_": "flwr.serverapp.strategy.FedAvg"}
                if mu is not None:
                    strategy = {"_target_": "strategies.fedprox.FedProx", "proximal_mu": mu}
                config = {
                    "seed": seed,
                    "method": method,
                    "partitioner": {"alpha": alpha, "seed": seed},
                    "strategy": strategy,
                    "engine": {"workers": seed},  # engine settings leave results alone: never a pooling warning
                }
                choices = {"strategy": "fedavg" if mu is None else "fedprox", "partitioner": "dirichlet"}
                value = 0.5 + (mu or 0) / 10 + alpha / 100 + seed / 1000
                write_run(root / str(number), [0.1, value], config, choices)
                number += 1
    return root


def write_run(run_dir, accuracies, config, choices):
    save_config(run_dir, config, choices)
    writer = MetricsWriter(run_dir)
    writer.write([(r, "centralized", None, "accuracy", value) for r, value in enumerate(accuracies)])
    writer.close()
    write_status(run_dir, "completed")


def legend(axis) -> list[str]:
    return [text.get_text() for text in axis.get_legend().get_texts()]


def test_hue_by_several_keys_labels_each_curve_with_the_keys_its_runs_have(methods, recwarn):
    frame = load(methods, where={"partitioner.alpha": 0.1})
    for hue in ("strategy,strategy.proximal_mu", ["strategy", "strategy.proximal_mu"], " strategy , strategy.proximal_mu"):
        axis = plot_metric(frame, "accuracy", hue=hue)
        assert legend(axis) == [
            "fedavg (n=2)",
            "fedprox, proximal_mu=0.01 (n=2)",
            "fedprox, proximal_mu=0.1 (n=2)",
            "fedprox, proximal_mu=1 (n=2)",
        ]
        assert axis.get_legend().get_title().get_text() == "strategy, strategy.proximal_mu"
        np.testing.assert_allclose(axis.lines[3].get_ydata(), [0.1, 0.6 + 0.001 + 0.0005])
    assert not recwarn.list
    with pytest.warns(UserWarning, match="'partitioner.alpha=0.1, strategy=fedprox' pools runs"):
        not_leading = plot_metric(frame, "accuracy", hue="partitioner.alpha,strategy")
    assert legend(not_leading) == ["partitioner.alpha=0.1, strategy=fedavg (n=2)", "partitioner.alpha=0.1, strategy=fedprox (n=6)"]


def test_a_curve_pooling_runs_of_different_configs_gives_one_warning_naming_the_keys(methods):
    frame = load(methods)
    with pytest.warns(UserWarning) as caught:
        plot_metric(frame, "accuracy", hue="strategy")
    assert [str(warning.message) for warning in caught] == [
        "hue strategy: 'fedavg' and 'fedprox' pool runs whose configs differ in method (fedprox_mu0.01, "
        "fedprox_mu0.1, fedprox_mu1), partitioner.alpha (0.1, 1) and strategy.proximal_mu (0.01, 0.1, 1); "
        "add them to --hue or filter with --where"
    ]
    with pytest.warns(UserWarning) as caught:
        plot_metric(load(methods, where=["strategy=fedprox", "partitioner.alpha=1"]), "accuracy", hue="strategy")
    assert [str(warning.message) for warning in caught] == [
        "hue strategy: 'fedprox' pools runs whose configs differ in method (fedprox_mu0.01, fedprox_mu0.1, "
        "fedprox_mu1) and strategy.proximal_mu (0.01, 0.1, 1); add them to --hue or filter with --where"
    ]


def test_missing_hue_key_among_several_is_named(methods):
    with pytest.raises(ConfigError, match=r"^hue 'strategy.mu' is not a config key of these runs; some available keys: method, "):
        plot_metric(load(methods), "accuracy", hue="method,strategy.mu")


def test_client_distribution_draws_a_box_per_round(sweep):
    axis = plot_client_distribution(load(sweep / "0"), "accuracy")
    assert list(axis.get_xticks()) == [1, 2]
    for server_round, median in ((1, 0.4), (2, 0.55)):
        flat_lines = {
            round(float(line.get_ydata()[0]), 9)
            for line in axis.lines
            if len(line.get_ydata()) == 2
            and line.get_ydata()[0] == line.get_ydata()[1]
            and np.mean(line.get_xdata()) == server_round
        }
        assert median in flat_lines


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: plot_metric(f, "acc"), "metric 'acc' is not recorded in these runs; available: accuracy."),
        (
            lambda f: plot_client_distribution(f, "loss", stage="federated"),
            "per-client metric 'loss' is not recorded for stage 'federated' in these runs; available: accuracy.",
        ),
        (
            lambda f: plot_metric(f, "accuracy", stage="train"),
            "stage 'train' has no metrics in these runs; available: centralized.",
        ),
        (
            lambda f: plot_metric(f, "accuracy", hue="strat"),
            "hue 'strat' is not a config key of these runs; some available keys: method, strategy, seed",
        ),
    ],
    ids=["metric", "metric of a stage", "stage", "hue"],
)
def test_bad_choices_give_one_sentence_listing_what_exists(sweep, call, message):
    with pytest.raises(ConfigError) as error:
        call(load(sweep))
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(("name", "magic"), [("fig.png", b"\x89PNG"), ("fig.pdf", b"%PDF")])
def test_fedsim_plot_writes_png_or_pdf(sweep, tmp_path, capsys, name, magic):
    main(
        [
            str(sweep),
            "--metric",
            "accuracy",
            "--hue",
            "strategy",
            "--stage",
            "centralized",
            "--out",
            str(tmp_path / name),
        ]
    )
    assert capsys.readouterr().out.strip() == str(tmp_path / name)
    assert (tmp_path / name).read_bytes().startswith(magic)


def test_fedsim_plot_defaults_to_a_png_in_the_folder(sweep, capsys):
    main([str(sweep / "1"), "--kind", "clients"])
    assert (sweep / "1" / "clients_federated_accuracy.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{empty}"], "no fedsim run in '"),
        (["{sweep}", "--metric", "acc"], "metric 'acc' is not recorded in these runs; available: accuracy."),
        (["{sweep}", "--hue", "strat"], "hue 'strat' is not a config key of these runs; some available keys: "),
        (["{sweep}", "--out", "fig.jpg"], "the figure file must end in .png, .pdf, .svg (got 'fig.jpg')."),
    ],
    ids=["no runs", "metric", "hue", "format"],
)
def test_fedsim_plot_bad_input_exits_2_with_one_sentence(sweep, tmp_path, capsys, args, message):
    args = [arg.format(sweep=sweep, empty=tmp_path) for arg in args]
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"fedsim-plot: error: {message}")
    assert error.count("\n") == 1


def test_fedsim_plot_runs_as_a_module(sweep, tmp_path):
    out = tmp_path / "fig.png"
    command = [sys.executable, "-m", "fedsim.plot_cli", str(sweep), "--hue", "strategy", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(b"\x89PNG")


def test_fedsim_plot_filters_with_where_and_hues_by_several_keys(methods, tmp_path, capsys):
    out = tmp_path / "fig.png"
    main([str(methods), "--where", "partitioner.alpha=0.1", "--where", "strategy=fedprox",
          "--hue", "strategy,strategy.proximal_mu", "--out", str(out)])
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out) and captured.err == ""
    assert out.read_bytes().startswith(b"\x89PNG")


def test_fedsim_plot_prints_the_pooling_warning_as_one_line(methods, tmp_path, capsys):
    main([str(methods), "--where", "partitioner.alpha=1", "--hue", "strategy", "--out", str(tmp_path / "fig.png")])
    assert capsys.readouterr().err.splitlines() == [
        "fedsim-plot: note: hue strategy: 'fedprox' pools runs whose configs differ in method (fedprox_mu0.01, "
        "fedprox_mu0.1, fedprox_mu1) and strategy.proximal_mu (0.01, 0.1, 1); add them to --hue or filter with --where"
    ]
    main([str(methods), "--where", "partitioner.alpha=1", "--out", str(tmp_path / "fig.png")])  # hue method: no pooling
    assert capsys.readouterr().err == ""
    main([str(methods), "--hue", "none", "--out", str(tmp_path / "fig.png")])
    assert capsys.readouterr().err.startswith("fedsim-plot: note: no hue: 'all runs' pools runs whose configs differ in ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--where", "alpha=0.1"], "where key 'alpha' is not a config key of these runs; some available keys: "),
        (["--where", "partitioner.alpha=0.3"], "no run in '{methods}' has partitioner.alpha=0.3 (partitioner.alpha is 0.1 or 1 there)."),
        (["--where", "partitioner.alpha"], "a where filter is KEY=VALUE, such as partitioner.alpha=0.1 (got 'partitioner.alpha')."),
        (["--hue", "method,strategy.mu"], "hue 'strategy.mu' is not a config key of these runs; some available keys: "),
    ],
    ids=["unknown key", "no run left", "no value", "hue key"],
)
def test_fedsim_plot_bad_where_or_hue_exits_2_with_one_sentence(methods, capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        main([str(methods), *args])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"fedsim-plot: error: {message.format(methods=methods)}")
    assert error.count("\n") == 1
