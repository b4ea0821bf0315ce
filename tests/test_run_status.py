"""Honest status: a run stopped by SIGINT, SIGTERM or SIGKILL says so, and loading leaves it out."""

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from fedsim.results import load, load_runs, read_status

LONG = ["num_clients=4", "num_rounds=500", "client.local_epochs=1"]


def start(run_dir, *args):
    command = [sys.executable, "-m", "fedsim.cli", *LONG, *args, f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(command, cwd=run_dir.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_round_1(process, run_dir, timeout=120.0):
    deadline = time.monotonic() + timeout
    metrics = run_dir / "metrics.csv"
    while time.monotonic() < deadline:
        if metrics.is_file() and any(line.startswith("1,") for line in metrics.read_text().splitlines()):
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.kill()
    pytest.fail("the run did not finish round 1 in time")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_the_run_with_one_line_its_status_and_128_plus_the_signal(tmp_path, signum, code):
    run_dir = tmp_path / "run"
    process = start(run_dir)
    wait_for_round_1(process, run_dir)
    running = yaml.safe_load((run_dir / "status.yaml").read_text())
    assert running["status"] == "running" and running["pid"] == process.pid
    assert running["host"] and running["heartbeat"]
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code
    status = yaml.safe_load((run_dir / "status.yaml").read_text())
    assert status["status"] == "interrupted" and status["last_round"] >= 1
    assert status["reason"] == f"stopped by {signum.name}"
    assert stderr.strip().splitlines() == [
        f"fedsim: interrupted after round {status['last_round']} of 500; results so far in {run_dir}"
    ]
    assert read_status(run_dir)["status"] == "interrupted"


def test_a_killed_run_is_reported_interrupted_and_left_out_of_load(tmp_path):
    run_dir = tmp_path / "run"
    process = start(run_dir)
    wait_for_round_1(process, run_dir)
    process.kill()
    process.communicate(timeout=60)
    assert yaml.safe_load((run_dir / "status.yaml").read_text())["status"] == "running"  # it could not say otherwise
    status = read_status(run_dir)
    assert status["status"] == "interrupted"
    assert status["reason"] == f"its process {process.pid} ended without recording the end of the run"
    assert load_runs(run_dir)["status"].tolist() == ["interrupted"]
    with pytest.raises(Exception, match="every run there failed or did not finish"), pytest.warns(
        UserWarning, match=r"left out 1 unfinished run\(s\): .*run \(interrupted"
    ):
        load(run_dir)
    frame = load(run_dir, incomplete=True)
    assert set(frame["status"]) == {"interrupted"} and frame["round"].max() >= 1


def test_a_running_run_on_another_host_counts_as_interrupted_once_its_heartbeat_is_old(tmp_path):
    status = {"status": "running", "pid": os.getpid(), "host": "elsewhere", "heartbeat": "2020-01-01T00:00:00+00:00"}
    (tmp_path / "status.yaml").write_text(yaml.safe_dump(status))
    assert read_status(tmp_path)["status"] == "interrupted"
    status["heartbeat"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    (tmp_path / "status.yaml").write_text(yaml.safe_dump(status))
    assert read_status(tmp_path)["status"] == "running"
