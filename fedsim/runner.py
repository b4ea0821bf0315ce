"""Run one configured simulation: plan it (every check), run it on the engine, save, plot."""

import gc
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fedsim import checkpoint as checkpoints
from fedsim.apps import build_server_app
from fedsim.callbacks.base import RunInfo
from fedsim.divergence import Diverged
from fedsim.plan import RunPlan, build_plan
from fedsim.plots import plot_run
from fedsim.results import record_failure, running_details, save_config, write_status
from fedsim.devices import describe
from fedsim.versions import save_versions


@dataclass
class RunSummary:
    """What a finished run reports: its folder, final aggregate metrics, wall time."""

    run_dir: Path
    final: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    figure: Path | None = None


def run(
    cfg: DictConfig,
    run_dir: str | Path,
    choices: dict[str, str] | None = None,
    quiet: bool = False,
    resume: bool = False,
    engine: object | None = None,
) -> RunSummary:
    """Run the simulation ``cfg`` describes and write its results into ``run_dir``.

    The plan checks every value (``ConfigError`` with one sentence) and prepares the
    data, partitions and model before any training starts. ``status.yaml`` in
    ``run_dir`` says whether the run is running (with its pid, host and heartbeat),
    completed, failed (with the reason) or interrupted (``KeyboardInterrupt``,
    which ``fedsim.interrupt.RunInterrupted`` is, with ``last_round``); a failure or
    interruption is recorded and then raised again. With ``resume``, the run continues
    after the checkpoint in ``run_dir`` (from the start if it wrote none). ``engine``, if
    given, runs the apps instead of the configured engine (the grid of Flower's runtime,
    when ``flwr run`` started fedsim's ServerApp: see ``fedsim.deployment.app``).
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    save_early_config(cfg, run_dir, choices)
    plan = None
    try:
        plan = build_plan(cfg, choices)
        if engine is not None:
            plan.engine = engine
        summary = execute(plan, run_dir, quiet, started, resume)
    except KeyboardInterrupt as stop:  # RunInterrupted (SIGINT, SIGTERM) or a plain Ctrl-C
        write_status(
            run_dir,
            "interrupted",
            reason=f"stopped by {stop or 'SIGINT'}",
            last_round=last_round(plan),
            seconds=round(time.perf_counter() - started, 3),
        )
        raise
    except Diverged as diverged:  # an outcome: the rounds so far are on disk, with their figure
        write_status(
            run_dir, "diverged", round=diverged.round, what=diverged.what, reason=str(diverged),
            seconds=round(time.perf_counter() - started, 3),
        )
        plot_run(run_dir)
        raise
    except Exception as error:
        record_failure(run_dir, error, time.perf_counter() - started)
        raise
    return summary


def last_round(plan: RunPlan | None) -> int:
    """The last round the run completed (0: none, only the initial evaluation or not even that)."""
    rounds = plan.history.rounds if plan is not None else {}
    return max(rounds, default=0)


def save_early_config(cfg: DictConfig, run_dir: Path, choices: dict[str, str] | None) -> None:
    """Write config.yaml before the plan checks it, so that a run its checks reject keeps its config too.

    The run writes it again, resolved by the plan, once the plan is built; a config
    that cannot even be resolved is written with its interpolations as they are.
    """
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001  # pylint: disable=broad-exception-caught
        config = OmegaConf.to_container(cfg, resolve=False)
    save_config(run_dir, config, dict(choices or {}))


def execute(
    plan: RunPlan, run_dir: Path, quiet: bool = False, started: float | None = None, resume: bool = False
) -> RunSummary:
    """Run a plan on its engine; the summary comes from the recorded metrics.

    With ``resume``, the run goes on after the checkpoint in ``run_dir``: its history
    and results files are those of the checkpoint's round.
    """
    started = time.perf_counter() if started is None else started
    config = OmegaConf.to_container(plan.config, resolve=True)
    save_config(run_dir, config, plan.choices)
    write_status(run_dir, "running", **running_details())
    checkpoint = checkpoints.load(run_dir) if resume else None
    if checkpoint is not None:
        plan.history = checkpoint.history
        checkpoints.cut_results(run_dir, checkpoint.file_sizes)
    else:  # from the start: nothing of an earlier run in this folder may be taken for this one's
        checkpoints.remove(run_dir)
        checkpoints.cut_results(run_dir, dict.fromkeys(checkpoints.APPENDED_FILES, 0))
        save_versions(run_dir, describe(plan.device))
    run = RunInfo(
        run_dir=run_dir,
        num_rounds=plan.settings.num_rounds,
        config=config,
        choices=plan.choices,
        quiet=quiet,
        resumed_after=checkpoint.round if checkpoint else 0,
    )
    # Flower's ArrayRecord.to_numpy_ndarrays(keep_input=False), which QFedAvg and Bulyan
    # call once per client, forces a full gc.collect(); with torch, datasets and the data
    # on the heap each took ~0.4 s. Freezing what exists now leaves those collections
    # only the run's own new objects to scan (10x faster QFedAvg rounds).
    gc.freeze()
    try:
        plan.engine.run(build_server_app(plan, run, checkpoint), plan.client_app(), plan.settings.num_clients)
    finally:
        gc.unfreeze()
    if (done := last_round(plan)) < plan.settings.num_rounds:  # the ServerApp ended early without saying why
        raise RuntimeError(f"the run ended after round {done} of {plan.settings.num_rounds} without an error")
    summary = RunSummary(run_dir=run_dir, final=plan.history.final, seconds=time.perf_counter() - started)
    resumed = {"resumed_after": run.resumed_after} if run.resumed_after else {}
    write_status(run_dir, "completed", seconds=round(summary.seconds, 3), **resumed)
    checkpoints.remove(run_dir)  # a completed run has nothing to resume
    summary.figure = plot_run(run_dir)
    return summary
