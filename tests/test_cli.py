"""The ``fedsim`` command: a run from any folder, and one clear sentence for bad input."""

import subprocess
import sys

import pytest
import yaml

TINY = ["num_clients=4", "num_rounds=2", "client.local_epochs=1"]


def fedsim(*args: str, cwd) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "fedsim.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_a_run_from_any_folder_writes_results_into_the_hydra_run_folder(tmp_path):
    result = fedsim(*TINY, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("config.yaml", "metrics.csv", "rounds.png", ".hydra/overrides.yaml"):
        assert (tmp_path / "run" / name).is_file(), name
    assert "round 2/2" in result.stdout
    assert "fedsim run finished" in result.stdout


BAD_INPUT = [
    (["partitioner.alpha=0"], "partitioner.alpha must be greater than 0"),
    (["partitioner.alpha=-1"], "partitioner.alpha must be greater than 0"),
    (["clients_per_round=5"], "clients_per_round must be between 1 and num_clients=4"),
    (["num_rounds=0"], "num_rounds must be at least 1"),
    (["strategy=fedfancy"], "Could not find 'strategy/fedfancy'"),
    (["dataset=huggingface", "dataset.path=parquet", "dataset.data_files=missing.parquet"],
     "dataset.data_files: no file at 'missing.parquet'"),
    (["dataset=synthetic", "dataset.num_users=4", "partitioner=natural", "model=cnn"],
     "model CNN does not fit the dataset's input shape (60,)"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_INPUT, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_input_gives_one_clear_sentence_and_a_nonzero_exit(tmp_path, overrides, message):
    result = fedsim(*TINY, *overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "run" / "metrics.csv").exists()
    if result.returncode == 2:
        status = yaml.safe_load((tmp_path / "run" / "status.yaml").read_text())
        assert status["status"] == "failed" and message in status["reason"]


def test_help_describes_fedsims_groups_and_not_its_internal_schema(tmp_path):
    result = fedsim("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for group in ("strategy", "dataset", "partitioner", "privacy", "callbacks", "method", "experiment"):
        assert group in result.stdout, group
    assert "schema" not in result.stdout and "_target_" not in result.stdout


def test_fedsims_own_warning_is_one_line_and_foreign_ones_are_gone(tmp_path):
    result = fedsim(*TINY, "privacy=local_dp", "privacy.target_delta=0.5", f"hydra.run.dir={tmp_path / 'run'}",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedsim: warning: privacy.target_delta=0.5 is larger than 1 / ")


def test_a_diverging_run_is_recorded_diverged_with_one_line_and_exit_code_3(tmp_path):
    result = fedsim(*TINY, "client.lr=100", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "fedsim: warning: the run diverged in round 1: the centralized test loss is nan; the run stops."
    ]
    status = yaml.safe_load((tmp_path / "run" / "status.yaml").read_text())
    assert status["status"] == "diverged" and status["round"] == 1 and status["what"] == "centralized loss"
    assert (tmp_path / "run" / "rounds.png").is_file()
