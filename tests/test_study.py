"""fedsim.study.run_study: completed runs are skipped, interrupted ones go on after their checkpoint."""

import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from fedsim.study import run_study
from tests.conftest import TINY
from tests.test_checkpoint import SMALL, run_in_process, values


def test_a_study_skips_completed_runs_and_resumes_interrupted_ones(tmp_path, capsys):
    overrides = [*TINY, *SMALL, "strategy=scaffold"]
    run_in_process(tmp_path / "runs" / "done", overrides)
    run_in_process(tmp_path / "runs" / "stopped", overrides, stop_after=3)
    completed = (tmp_path / "runs" / "done" / "metrics.csv").read_bytes()
    run_study({"done": overrides, "stopped": overrides}, tmp_path / "runs", jobs=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "done: already done"
    assert lines[1].startswith("stopped: test accuracy ")
    assert (tmp_path / "runs" / "done" / "metrics.csv").read_bytes() == completed
    status = yaml.safe_load((tmp_path / "runs" / "stopped" / "status.yaml").read_text())
    assert status["status"] == "completed" and status["resumed_after"] == 2  # went on, did not start over
    pd.testing.assert_frame_equal(values(tmp_path / "runs" / "stopped"), values(tmp_path / "runs" / "done"))


def test_a_run_another_process_is_running_is_left_to_it(tmp_path, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from fedsim.run_folder import claim; claim(sys.argv[1]); "
         "print('held', flush=True); time.sleep(60)", str(tmp_path / "runs" / "busy")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        run_study({"busy": [*TINY, "num_rounds=1"]}, tmp_path / "runs", jobs=1)
    finally:
        holder.kill()
        holder.wait()
    assert capsys.readouterr().out.splitlines() == ["busy: in use by another process; left to it"]
    assert not (tmp_path / "runs" / "busy" / "metrics.csv").exists()


def test_a_run_started_under_other_versions_goes_on_only_when_forced(tmp_path, capsys):
    overrides = [*TINY, *SMALL]
    run_dir = tmp_path / "runs" / "older"
    run_in_process(run_dir, overrides, stop_after=3)
    recorded = yaml.safe_load((run_dir / "versions.yaml").read_text())
    (run_dir / "versions.yaml").write_text(yaml.safe_dump({**recorded, "torch": "0.0.1"}))
    with pytest.raises(SystemExit, match=r"^1 of 1 runs failed"):
        run_study({"older": overrides}, tmp_path / "runs", jobs=1)
    assert re.match(r"older: failed: ConfigError: .* ran under torch 0.0.1 \(now .*\); resume it", capsys.readouterr().out)
    run_study({"older": overrides}, tmp_path / "runs", jobs=1, force=True)
    assert capsys.readouterr().out.startswith("older: test accuracy ")
    status = yaml.safe_load((run_dir / "status.yaml").read_text())
    assert status["status"] == "completed" and status["resumed_after"] == 2
    assert yaml.safe_load((run_dir / "versions.yaml").read_text())["resumed_under"]["torch"] == recorded["torch"]


def test_a_diverged_run_is_finished_and_a_failing_one_does_not_stop_the_others(tmp_path, capsys):
    runs = {
        "diverges": [*TINY, "num_rounds=2", "client.lr=1e30"],
        "refused": [*TINY, "num_rounds=2", "client.lr=-1"],
        "fine": [*TINY, "num_rounds=1"],
    }
    with pytest.raises(SystemExit, match=r"^1 of 3 runs failed"):
        run_study(runs, tmp_path / "runs", jobs=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("diverges: diverged: ") and "round 1" in lines[0]
    assert lines[1] == "refused: failed: ConfigError: client.lr must be greater than 0 and finite (got -1.0)."
    assert lines[2].startswith("fine: test accuracy ")
    with pytest.raises(SystemExit, match=r"^1 of 3 runs failed"):
        run_study(runs, tmp_path / "runs", jobs=1)
    assert capsys.readouterr().out.splitlines()[::2] == ["diverges: already diverged", "fine: already done"]
