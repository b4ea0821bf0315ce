"""Checkpoints and resume: a resumed run ends with the metrics of the same run uninterrupted.

In-process interruption (a callback that raises after a round) covers
every strategy, local and central DP and the workers; real subprocesses killed with
SIGKILL cover the command (`fedsim resume=RUN_DIR`, `fedsim resume=SWEEP_DIR`).
"""

import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fedsim import checkpoint as checkpoints
from fedsim.callbacks.base import Callback
from fedsim.cli import load_run_config
from fedsim.plan import RunPlan, build_plan
from fedsim.runner import execute
from tests.conftest import compose_config
from tests.option_files import option_names

SMALL = ["num_rounds=3", "checkpoint.every=1", "clients_per_round=3", "eval_clients_per_round=2"]


class Stopped(Exception):
    """The test's interruption (an Exception: Flower's Ray engine passes only those on from the ServerApp)."""


class StopAfter(Callback):
    """Interrupt the run once round ``last`` has ended (its rows are written: resume must drop them)."""

    def __init__(self, last: int) -> None:
        self.last = last

    def on_round_end(self, server_round, rows, history):
        if server_round == self.last:
            raise Stopped


def run_in_process(run_dir: Path, overrides: list[str], stop_after: int | None = None, resume: bool = False) -> None:
    plan = build_plan(compose_config(*overrides), {})
    if stop_after is not None:
        plan.callbacks.append(StopAfter(stop_after))
    try:
        execute(plan, run_dir, quiet=True, resume=resume)
    except Stopped:
        assert stop_after is not None


def values(run_dir: Path) -> pd.DataFrame:
    """Every recorded value but the rounds' timing."""
    frame = pd.read_csv(run_dir / "metrics.csv")
    return frame[frame["metric"] != "round_seconds"].reset_index(drop=True)


def interrupted_and_resumed(tmp_path: Path, overrides: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run_in_process(whole, overrides)
    run_in_process(resumed, overrides, stop_after=3)
    assert checkpoints.load(resumed).round == 2
    run_in_process(resumed, overrides, resume=True)
    return values(whole), values(resumed)


CASES = [[f"strategy={name}"] for name in option_names("strategy")] + [
    ["privacy=local_dp"],
    ["privacy=central_dp", "strategy.weighting=uniform"],
    ["privacy=central_dp_adaptive", "num_clients=8", "clients_per_round=8", "privacy.clipped_count_stddev=10", "strategy.weighting=uniform"],
    ["strategy=scaffold", "engine.workers=2"],
    ["strategy=ditto", "privacy=local_dp", "engine.workers=2"],
    # optimizer state kept in the nodes between rounds, and each round's rate from a schedule
    ["optimizer.momentum=0.9", "optimizer.keep_state=true", "lr_schedule=exponential"],
    ["strategy=ditto", "optimizer=adam", "optimizer.keep_state=true", "lr_schedule=cosine"],
    ["strategy=scaffold", "optimizer.momentum=0.9", "optimizer.keep_state=true", "lr_schedule=step",
     "lr_schedule.every=1", "engine.workers=2"],
    # a radius every update exceeds, so the restored center decides round 3; the seeded weak-DP noise
    ["strategy=centered_clipping", "strategy.tau=0.05"],
    ["strategy=norm_clipping", "strategy.noise_std=0.01"],
]


@pytest.mark.parametrize("overrides", CASES, ids=lambda overrides: " ".join(overrides))
def test_a_resumed_run_records_what_the_uninterrupted_run_records(tmp_path, overrides):
    whole, resumed = interrupted_and_resumed(tmp_path, [*SMALL, *overrides])
    pd.testing.assert_frame_equal(resumed, whole)
    assert not (tmp_path / "resumed" / checkpoints.CHECKPOINT_FILE).exists()  # a completed run keeps none


def test_without_the_nodes_state_a_resumed_scaffold_run_would_differ(tmp_path, monkeypatch):
    """The comparison above can fail: SCAFFOLD's client control variates live in the nodes' state."""
    monkeypatch.setattr("fedsim.apps.load_node_states", lambda grid, node_partitions, states: None)
    whole, resumed = interrupted_and_resumed(tmp_path, [*SMALL, "strategy=scaffold"])
    assert not whole.equals(resumed)


def test_without_the_nodes_state_a_resumed_run_with_kept_momentum_would_differ(tmp_path, monkeypatch):
    monkeypatch.setattr("fedsim.apps.load_node_states", lambda grid, node_partitions, states: None)
    whole, resumed = interrupted_and_resumed(tmp_path, [*SMALL, "optimizer.momentum=0.9", "optimizer.keep_state=true"])
    assert not whole.equals(resumed)


@pytest.mark.parametrize("overrides", [["strategy=fedadam"], ["strategy=centered_clipping", "strategy.tau=0.05"]],
                         ids=lambda overrides: " ".join(overrides))
def test_without_the_server_state_a_resumed_run_would_differ(tmp_path, monkeypatch, overrides):
    monkeypatch.setattr("fedsim.apps.load_server_state", lambda strategy, state: None)
    whole, resumed = interrupted_and_resumed(tmp_path, [*SMALL, *overrides])
    assert not whole.equals(resumed)


SERVER_STATE_CASES = [["strategy=fedadam"], ["strategy=fedavgm"], ["strategy=scaffold"], ["strategy=feddyn"],
                      ["strategy=qfedavg"], ["strategy=centered_clipping"],
                      ["strategy=norm_clipping", "strategy.noise_std=0.01"], ["privacy=local_dp"],
                      ["privacy=central_dp", "strategy.weighting=uniform"],
                      ["privacy=central_dp_adaptive", "num_clients=8", "clients_per_round=8",
                       "privacy.clipped_count_stddev=10", "strategy.weighting=uniform"],
                      ["privacy=central_dp", "privacy.side=client", "strategy.weighting=uniform"]]


@pytest.mark.parametrize("overrides", SERVER_STATE_CASES, ids=lambda overrides: " ".join(overrides))
def test_every_attribute_a_round_changes_is_checkpointed(tmp_path, monkeypatch, overrides):
    """A strategy's state between rounds is what its attributes hold; each one a round changes must be named."""
    stacks = []
    build_stack = RunPlan.strategy_stack

    def keep_stack(plan, node_partitions):
        stack = build_stack(plan, node_partitions)
        stacks.append((stack, [_attributes(layer) for layer in checkpoints.stack_layers(stack)]))
        return stack

    monkeypatch.setattr(RunPlan, "strategy_stack", keep_stack)
    run_in_process(tmp_path / "run", ["num_rounds=2", *overrides])
    (stack, before), = stacks
    for layer, attributes in zip(checkpoints.stack_layers(stack), before):
        changed = {name for name, value in _attributes(layer).items() if attributes.get(name) != value}
        assert changed <= set(checkpoints.state_attributes(layer)), type(layer).__name__


def _attributes(layer) -> dict[str, bytes]:
    return {name: pickle.dumps(value) for name, value in vars(layer).items() if name != "strategy"}


def test_a_kill_while_a_checkpoint_is_written_leaves_the_previous_one(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_in_process(run_dir, [*SMALL, "num_rounds=4"], stop_after=3)
    before = (run_dir / checkpoints.CHECKPOINT_FILE).read_bytes()
    kept = checkpoints.load(run_dir)

    def killed_mid_write(obj, file, protocol):
        file.write(b"\x80\x05partial")
        raise KeyboardInterrupt  # what SIGINT raises

    monkeypatch.setattr(checkpoints.pickle, "dump", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save(run_dir, kept)
    assert (run_dir / checkpoints.CHECKPOINT_FILE).read_bytes() == before
    assert sorted(path.name for path in run_dir.iterdir() if "checkpoint" in path.name) == [checkpoints.CHECKPOINT_FILE]


def test_checkpoint_every_0_writes_none_and_a_resume_starts_over(tmp_path):
    run_dir = tmp_path / "run"
    overrides = [*SMALL, "checkpoint.every=0"]
    run_in_process(run_dir, overrides, stop_after=2)
    assert checkpoints.load(run_dir) is None
    run_in_process(run_dir, overrides, resume=True)
    whole = tmp_path / "whole"
    run_in_process(whole, overrides)
    pd.testing.assert_frame_equal(values(run_dir), values(whole))


def test_a_negative_checkpoint_interval_is_refused():
    with pytest.raises(Exception, match=r"checkpoint.every must be at least 0, where 0 writes no checkpoints \(got -1\)"):
        build_plan(compose_config("checkpoint.every=-1"), {})


# --- the command, with real processes ------------------------------------------------------

LONG = ["num_clients=4", "num_rounds=20", "client.local_epochs=1", "checkpoint.every=2"]


def fedsim(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedsim.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def kill_after_round(command: list[str], metrics: Path, server_round: int, cwd: Path) -> None:
    """Start ``command``, SIGKILL it once ``metrics`` holds ``server_round``."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and any(line.startswith(f"{server_round},") for line in metrics.read_text().splitlines())):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run did not reach the round in time"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)


@pytest.mark.parametrize("extra", [[], ["strategy=scaffold", "engine.workers=2"]], ids=["fedavg", "scaffold-workers"])
def test_a_run_killed_by_sigkill_resumes_to_the_same_metrics(tmp_path, extra):
    args = [*LONG, *extra]
    killed = tmp_path / "killed"
    kill_after_round([sys.executable, "-m", "fedsim.cli", *args, f"hydra.run.dir={killed}"], killed / "metrics.csv", 3, tmp_path)
    assert yaml.safe_load((killed / "status.yaml").read_text())["status"] == "running"  # it could not say otherwise
    done = fedsim(f"resume={killed}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith("resuming after round ")
    assert yaml.safe_load((killed / "status.yaml").read_text())["status"] == "completed"
    whole = tmp_path / "whole"
    run_in_process(whole, args)  # the command runs what compose_config composes
    pd.testing.assert_frame_equal(values(killed), values(whole))


def test_a_killed_sweep_resumes_its_unfinished_runs_and_skips_the_finished(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=0,1,2", *LONG, "num_rounds=8"]
    kill_after_round([sys.executable, "-m", "fedsim.cli", *args, f"hydra.sweep.dir={sweep}"], sweep / "1" / "metrics.csv", 3, tmp_path)
    assert not (sweep / "2").exists()
    done = fedsim(f"resume={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("#0 seed=0") and "already completed; not run again" in lines[0]
    assert all(yaml.safe_load((sweep / str(job) / "status.yaml").read_text())["status"] == "completed" for job in range(3))
    for job in range(3):
        whole = tmp_path / f"whole-{job}"
        run_in_process(whole, [*LONG, "num_rounds=8", f"seed={job}"])
        pd.testing.assert_frame_equal(values(sweep / str(job)), values(whole))


def test_resuming_under_other_versions_is_refused_unless_forced(tmp_path):
    run_dir = tmp_path / "run"
    run_in_process(run_dir, SMALL, stop_after=2)
    recorded = yaml.safe_load((run_dir / "versions.yaml").read_text())
    assert {"fedsim", "flwr", "torch", "python"} <= set(recorded)
    (run_dir / "versions.yaml").write_text(yaml.safe_dump({**recorded, "torch": "1.0.0"}))
    (run_dir / "status.yaml").write_text(yaml.safe_dump({"status": "interrupted", "last_round": 2}))
    refused = fedsim(f"resume={run_dir}", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"fedsim: error: {run_dir} ran under torch 1.0.0 (now {recorded['torch']}); resume it under the versions it "
        "ran under, or add force=true to resume it anyway (its numbers may then differ from an uninterrupted run)."
    )
    assert yaml.safe_load((run_dir / "status.yaml").read_text())["status"] == "interrupted"  # untouched
    forced = fedsim(f"resume={run_dir}", "force=true", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert yaml.safe_load((run_dir / "versions.yaml").read_text())["resumed_under"]["torch"] == recorded["torch"]


def test_a_folder_of_an_earlier_fedsim_resumes_with_the_settings_gained_since_at_their_defaults(tmp_path):
    """A forced resume of a run written before device, attack and faults existed goes on as that fedsim ran it."""
    whole, run_dir = tmp_path / "whole", tmp_path / "run"
    run_in_process(whole, SMALL)
    run_in_process(run_dir, SMALL, stop_after=2)
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())
    for key in ("device", "attack", "faults"):
        del recorded[key]
    del recorded["client"]["eval_fraction"]  # a nested setting too
    (run_dir / "config.yaml").write_text(yaml.safe_dump(recorded))
    choices = yaml.safe_load((run_dir / "choices.yaml").read_text())
    (run_dir / "choices.yaml").write_text(yaml.safe_dump({k: v for k, v in choices.items() if k != "attack"}))
    cfg, loaded_choices = load_run_config(run_dir)
    assert (cfg.device, cfg.attack._target_, cfg.faults.dropout, cfg.client.eval_fraction) == (
        "cpu", "fedsim.attacks.NoAttack", 0.0, 0.1
    )
    assert loaded_choices["attack"] == "none"
    (run_dir / "status.yaml").write_text(yaml.safe_dump({"status": "interrupted", "last_round": 2}))
    resumed = fedsim(f"resume={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    pd.testing.assert_frame_equal(values(run_dir), values(whole))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["resume=nowhere"], "resume=nowhere names no fedsim run folder or sweep folder (it holds no config.yaml or multirun.yaml)."),
        (["resume=run", "seed=3"], "resume=run takes no other settings (got seed=3): the run goes on with its own config.yaml."),
    ],
)
def test_resume_refuses_bad_input_in_one_sentence(tmp_path, args, message):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("seed: 0\n")
    done = fedsim(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"fedsim: error: {message}"


def test_a_run_on_the_ray_engine_resumes(tmp_path):
    pytest.importorskip("ray")
    overrides = [*SMALL, "strategy=scaffold"]
    resumed = tmp_path / "resumed"
    run_in_process(resumed, [*overrides, "engine=ray"], stop_after=3)
    run_in_process(resumed, [*overrides, "engine=ray"], resume=True)
    run_in_process(tmp_path / "local", overrides)
    ray, local = values(resumed), values(tmp_path / "local")
    pd.testing.assert_frame_equal(ray.drop(columns="value"), local.drop(columns="value"))
    np.testing.assert_allclose(ray["value"], local["value"], rtol=0, atol=1e-6)  # as the engines agree uninterrupted


def test_a_resumed_run_logs_each_round_once_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = [*SMALL, "+callbacks=tensorboard"]
    run_dir = tmp_path / "run"
    run_in_process(run_dir, overrides, stop_after=3)
    run_in_process(run_dir, overrides, resume=True)
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    logged = [(event.step, event.value) for event in events.Scalars("centralized/accuracy")]
    recorded = values(run_dir).query("stage == 'centralized' and metric == 'accuracy'")
    assert [step for step, _ in logged] == [0, 1, 2, 3]
    np.testing.assert_allclose([value for _, value in logged], recorded["value"], rtol=1e-6)
