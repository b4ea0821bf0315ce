"""Sweeps: Hydra multirun folders that describe themselves, failed runs recorded, experiment presets."""

import itertools
import subprocess
import sys
from importlib import resources

import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

from fedsim.config import register_schemas
from fedsim.plan import build_plan
from fedsim.results import load, load_runs

SWEEP_ARGS = ["num_clients=4", "num_rounds=1", "client.local_epochs=1", "clients_per_round=1,2,9"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    command = [sys.executable, "-m", "fedsim.cli", "-m", *SWEEP_ARGS, f"hydra.sweep.dir={root / 'sweep'}"]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300, check=False)
    return root / "sweep", result


def test_a_failed_run_does_not_stop_the_sweep_but_makes_its_exit_code_nonzero(sweep):
    sweep_dir, result = sweep
    assert result.returncode == 1, result.stderr
    statuses = {number: yaml.safe_load((sweep_dir / str(number) / "status.yaml").read_text()) for number in range(3)}
    assert [statuses[n]["status"] for n in range(3)] == ["completed", "completed", "failed"]
    assert statuses[2]["reason"] == "clients_per_round must be between 1 and num_clients=4 (got 9)."
    for number in (0, 1):
        for name in ("config.yaml", "choices.yaml", "metrics.csv", "rounds.png", ".hydra/overrides.yaml"):
            assert (sweep_dir / str(number) / name).is_file(), (number, name)
    # a run its checks reject keeps its config too
    assert yaml.safe_load((sweep_dir / "2" / "config.yaml").read_text())["clients_per_round"] == 9


def test_a_sweep_ends_with_its_failed_runs_on_stderr(sweep):
    sweep_dir, result = sweep
    assert result.stderr.strip().splitlines()[-2:] == [
        "fedsim: 1 of 3 runs failed:",
        (
            "  #2 num_clients=4 num_rounds=1 client.local_epochs=1 clients_per_round=9: "
            f"clients_per_round must be between 1 and num_clients=4 (got 9).  {sweep_dir / '2'}"
        ),
    ]


def test_a_sweep_with_a_bad_value_exits_nonzero_and_names_it(tmp_path):
    command = [sys.executable, "-m", "fedsim.cli", "-m", "num_clients=4", "num_rounds=1", "client.local_epochs=1",
               "partitioner.alpha=0.5,-1", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-2] == "fedsim: 1 of 2 runs failed:"
    assert lines[-1].startswith("  #1 num_clients=4 num_rounds=1 client.local_epochs=1 partitioner.alpha=-1: ")
    assert "partitioner.alpha must be greater than 0" in lines[-1]
    assert (tmp_path / "sweep" / "1" / "config.yaml").is_file()


def test_the_sweep_root_records_its_overrides(sweep):
    sweep_dir, _ = sweep
    description = yaml.safe_load((sweep_dir / "sweep.yaml").read_text())
    assert description["overrides"] == SWEEP_ARGS


def test_a_sweep_prints_one_line_per_run(sweep):
    sweep_dir, result = sweep
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3, result.stdout
    for number, line in enumerate(lines):
        assert line.startswith(f"#{number} num_clients=4 num_rounds=1 client.local_epochs=1")
        assert line.endswith(str(sweep_dir / str(number)))
    assert "test acc" in lines[0] and "test acc" in lines[1]
    assert "failed: clients_per_round must be between 1 and num_clients=4 (got 9)." in lines[2]
    assert "round 1/1" not in result.stdout
    assert "Traceback" not in result.stderr


def test_load_of_the_sweep_has_the_completed_runs_and_their_config(sweep):
    sweep_dir, _ = sweep
    with pytest.warns(UserWarning, match="left out 1 failed run"):
        frame = load(sweep_dir)
    runs = frame.drop_duplicates("run")
    assert list(runs["clients_per_round"]) == [1, 2]
    assert list(runs["strategy"]) == ["fedavg", "fedavg"]
    train_clients = frame[(frame["metric"] == "train_clients") & (frame["round"] == 1)]
    assert list(train_clients["value"]) == [1.0, 2.0]
    assert list(load_runs(sweep_dir)["status"]) == ["completed", "completed", "failed"]


def experiments() -> list[str]:
    folder = resources.files("fedsim.conf").joinpath("experiment")
    return sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def test_there_are_experiment_presets():
    assert {"dirichlet_alpha", "strategies_noniid"} <= set(experiments())


@pytest.mark.parametrize("name", experiments())
@pytest.mark.filterwarnings("ignore:The specified min_partition_size:UserWarning")  # flwr-datasets redraws alpha=0.1
def test_every_run_of_an_experiment_preset_composes_and_checks(name):
    text = resources.files("fedsim.conf").joinpath("experiment", f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    register_schemas()
    with initialize_config_module("fedsim.conf", version_base=None):
        preset = compose("config", overrides=[f"+experiment={name}"], return_hydra_config=True)
        params = preset.hydra.sweeper.params or {}
        grid = [[f"{key}={value}" for value in str(values).split(",")] for key, values in params.items()]
        runs = [list(combination) for combination in itertools.product(*grid)]
        assert len(runs) >= 2
        for overrides in runs:
            cfg = compose("config", overrides=[f"+experiment={name}", *overrides])
            build_plan(cfg)  # every check a run makes before its engine starts
            for override in overrides:
                key, value = override.split("=")
                chosen = OmegaConf.select(cfg, key)
                if not isinstance(chosen, DictConfig):  # a value, not a group's option
                    assert str(chosen) == value
