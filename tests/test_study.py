"""fedsim.study.run_study: completed runs are skipped, interrupted ones go on after their checkpoint."""

import pandas as pd
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
