"""One writer per run folder: unique default folders, a lock, and no run into another run's results."""

import subprocess
import sys

import yaml

TINY = ["num_clients=4", "num_rounds=2", "client.local_epochs=1"]


def start(*args, cwd):
    command = [sys.executable, "-m", "fedsim.cli", *args]
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process):
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout, stderr


def snapshot(folder):
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_two_default_folder_runs_started_at_once_get_two_folders(tmp_path):
    results = [finish(p) for p in [start(*TINY, cwd=tmp_path), start(*TINY, cwd=tmp_path)]]
    assert [code for code, _, _ in results] == [0, 0], results
    runs = sorted(path.parent for path in (tmp_path / "outputs").rglob("metrics.csv"))
    assert len(runs) == 2
    for run in runs:
        assert yaml.safe_load((run / "status.yaml").read_text())["status"] == "completed"


def test_two_runs_into_one_folder_at_once_one_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    processes = [start(*TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path) for _ in range(2)]
    results = sorted(finish(p) for p in processes)
    assert [code for code, _, _ in results] == [0, 2], results
    refused = results[1][2].strip().splitlines()
    assert len(refused) == 1 and refused[0].startswith(f"fedsim: error: {run_dir} ")
    assert "is in use by another fedsim run" in refused[0] or "already holds the results of another run" in refused[0]
    assert yaml.safe_load((run_dir / "status.yaml").read_text())["status"] == "completed"


def test_a_rejected_run_leaves_another_runs_folder_untouched_and_overwrite_replaces_it(tmp_path):
    run_dir = tmp_path / "run"
    assert finish(start(*TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path))[0] == 0
    before = snapshot(run_dir)
    code, _, stderr = finish(start(*TINY, "partitioner.alpha=0", f"hydra.run.dir={run_dir}", cwd=tmp_path))
    assert code == 2
    assert stderr.strip().splitlines() == [
        (
            f"fedsim: error: {run_dir} already holds the results of another run (status: completed); choose another "
            "hydra.run.dir (or the default, a new folder), or add overwrite=true to replace it."
        )
    ]
    assert snapshot(run_dir) == before
    code, _, stderr = finish(start(*TINY, "seed=1", "overwrite=true", f"hydra.run.dir={run_dir}", cwd=tmp_path))
    assert code == 0, stderr
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["seed"] == 1
    assert "overwrite" not in yaml.safe_load((run_dir / "config.yaml").read_text())
