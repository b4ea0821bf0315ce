"""Hydra's launcher plugins: a sweep's jobs in worker processes (joblib) or submitit jobs, as if run alone."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml
from hydra import compose, initialize_config_module

from fedsim.config import register_schemas
from fedsim.results import COLUMNS, load, read_status

TINY = ["num_clients=4", "num_rounds=2", "client.local_epochs=1"]
SEEDS = (0, 1)


def fedsim(*args: str, cwd: Path, own_group: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fedsim.cli", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=own_group)


def finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def alone(tmp_path_factory) -> dict[int, Path]:
    """Each seed's run as its own ``fedsim`` process (both at once)."""
    root = tmp_path_factory.mktemp("alone")
    runs = {seed: fedsim(f"seed={seed}", *TINY, f"hydra.run.dir={root / str(seed)}", cwd=root) for seed in SEEDS}
    for process in runs.values():
        assert finish(process).returncode == 0
    return {seed: root / str(seed) for seed in SEEDS}


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Seeds 0 and 1, each with clients_per_round=4 and 9 (which the checks refuse), on 2 joblib workers.

    It runs in a fresh folder without hydra.sweep.dir, so the sweep gets the default folder.
    """
    cwd = tmp_path_factory.mktemp("joblib")
    result = finish(fedsim("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", *TINY,
                           "clients_per_round=4,9", cwd=cwd))
    return cwd, result


def sweep_dir_of(cwd: Path) -> Path:
    folders = [path.parent for path in (cwd / "multirun").glob("*/*/multirun.yaml")]
    assert len(folders) == 1, folders  # the workers share the sweep folder the launching process named
    return folders[0]


def timeless_metrics(run_dir: Path) -> pd.DataFrame:
    """The run's metrics.csv as ``fedsim.results.load`` reads it, without timings (round_seconds)."""
    frame = load(run_dir)[COLUMNS]
    frame = frame[~frame["metric"].str.endswith("_seconds")]
    return frame.sort_values(["round", "stage", "client", "metric"]).reset_index(drop=True)


def test_joblib_runs_each_job_with_the_metrics_it_has_alone(joblib_sweep, alone):
    cwd, _ = joblib_sweep
    sweep_dir = sweep_dir_of(cwd)
    for number, seed in ((0, 0), (2, 1)):  # jobs 1 and 3 are the refused clients_per_round=9
        swept = timeless_metrics(sweep_dir / str(number))
        assert len(swept) > 50
        pd.testing.assert_frame_equal(swept, timeless_metrics(alone[seed]), check_exact=True)


def test_a_joblib_sweep_sums_up_its_failed_runs_and_exits_1(joblib_sweep):
    cwd, result = joblib_sweep
    sweep_dir = sweep_dir_of(cwd)
    assert result.returncode == 1, result.stderr
    reason = "clients_per_round must be between 1 and num_clients=4 (got 9)."
    assert result.stderr.strip().splitlines()[-3:] == [
        "fedsim: 2 of 4 runs failed:",
        f"  #1 seed=0 {' '.join(TINY)} clients_per_round=9: {reason}  {sweep_dir / '1'}",
        f"  #3 seed=1 {' '.join(TINY)} clients_per_round=9: {reason}  {sweep_dir / '3'}",
    ]
    assert "Traceback" not in result.stderr


def test_a_joblib_sweep_prints_one_line_per_run_and_describes_itself(joblib_sweep):
    cwd, result = joblib_sweep
    sweep_dir = sweep_dir_of(cwd)
    lines = sorted(result.stdout.strip().splitlines())  # the workers finish in any order
    assert [line.split()[0] for line in lines] == ["#0", "#1", "#2", "#3"], result.stdout
    for number, line in enumerate(lines):
        assert line.endswith(str(sweep_dir / str(number)))
        assert ("failed:" in line) == (number % 2 == 1)
    description = yaml.safe_load((sweep_dir / "sweep.yaml").read_text())
    assert description["overrides"] == ["seed=0,1", *TINY, "clients_per_round=4,9"]  # the launcher's are Hydra's


def test_submitit_local_completes_with_the_metrics_of_runs_alone(tmp_path, alone):
    sweep_dir = tmp_path / "sweep"
    result = finish(fedsim("-m", "hydra/launcher=submitit_local", "seed=0,1", *TINY, "clients_per_round=4",
                           f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path))
    assert result.returncode == 0, result.stderr
    for number, seed in ((0, 0), (1, 1)):
        assert yaml.safe_load((sweep_dir / str(number) / "status.yaml").read_text())["status"] == "completed"
        pd.testing.assert_frame_equal(timeless_metrics(sweep_dir / str(number)), timeless_metrics(alone[seed]),
                                      check_exact=True)


def test_the_readme_slurm_example_composes():
    settings = {"partition": "cpu", "timeout_min": 60, "cpus_per_task": 1, "gpus_per_node": 0, "array_parallelism": 32}
    register_schemas()
    with initialize_config_module("fedsim.conf", version_base=None):
        cfg = compose("config", overrides=["+experiment=compare", "hydra/launcher=submitit_slurm",
                                           *(f"hydra.launcher.{key}={value}" for key, value in settings.items())],
                      return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert {key: cfg.hydra.launcher[key] for key in settings} == settings


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True)],  # `kill PID` or a scheduler; Ctrl-C in a terminal
    ids=["SIGTERM-to-fedsim", "SIGINT-to-its-process-group"],
)
def test_a_signal_ends_a_joblib_sweep_and_its_workers_in_one_line(tmp_path, signum, to_group):
    sweep_dir = tmp_path / "sweep"
    process = fedsim("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", "num_clients=4",
                     "num_rounds=500", "client.local_epochs=1", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path,
                     own_group=to_group)
    workers = running_pids([sweep_dir / "0", sweep_dir / "1"], deadline=time.monotonic() + 120)
    assert os.getpid() not in workers and process.pid not in workers and len(set(workers)) == 2
    if to_group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    result = finish(process)
    assert result.returncode == 128 + signum
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "fedsim: interrupted"
    for line in lines[:-1]:  # a worker that records its run before it is ended says so
        assert line.startswith("fedsim: interrupted after round "), result.stderr
    time.sleep(2)
    assert not [pid for pid in workers if alive(pid)]
    for number in (0, 1):
        assert read_status(sweep_dir / str(number))["status"] == "interrupted"


def running_pids(run_dirs: list[Path], deadline: float) -> list[int]:
    """The pids that the runs' status.yaml record once all of them are running a round."""
    while time.monotonic() < deadline:
        statuses = [yaml.safe_load(path.read_text()) if path.is_file() else None
                    for path in (run_dir / "status.yaml" for run_dir in run_dirs)]
        if all(status and status.get("status") == "running" and status.get("last_round") for status in statuses):
            return [status["pid"] for status in statuses]
        time.sleep(0.2)
    raise AssertionError("the sweep's runs did not start")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
