"""Run the many runs of a study in worker processes, resumably (used by experiments/)."""

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml


FINISHED = ("completed", "diverged")  # outcomes a rerun of the study leaves as they are


def run_study(runs: Mapping[str, Sequence[str]], runs_dir: Path, jobs: int = 2, force: bool = False) -> None:
    """Run every ``name -> overrides`` into ``runs_dir/name``, ``jobs`` at a time.

    A run whose ``status.yaml`` says completed or diverged is skipped; any other run that started
    goes on after its last checkpoint (``checkpoint.every``; as ``fedsim resume=`` does,
    refused under other versions than it ran under), so a study can be stopped, even
    killed, and resumed; a run another process is running (its folder is locked) is left
    to it, so a second study process takes the next runs. ``force`` resumes runs that
    started under other versions too (their ``versions.yaml`` records ``resumed_under``).
    Each worker process uses one torch thread. A run that diverges or fails is reported
    in its line and the others go on; if any failed, the study ends with SystemExit
    saying how many.
    """
    names = list(runs)
    failed = 0
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for line, ok in pool.map(
            _run_one, names, [list(runs[n]) for n in names], [Path(runs_dir)] * len(names), [force] * len(names)
        ):
            print(line, flush=True)
            failed += not ok
    if failed:
        raise SystemExit(f"{failed} of {len(names)} runs failed (see their lines); run the study again to retry them.")


def _run_one(name: str, overrides: list[str], runs_dir: Path, force: bool = False) -> tuple[str, bool]:
    """Run (or resume) one run of a study: its line, and whether it ended as a finished run."""
    os.environ["TQDM_DISABLE"] = "1"  # read when tqdm is first imported, below
    import torch

    from fedsim.compose import compose
    from fedsim.divergence import Diverged
    from fedsim.run_folder import RunFolderTaken, claim
    from fedsim.runner import run
    from fedsim.versions import check_versions

    torch.set_num_threads(1)
    run_dir = runs_dir / name
    status = run_dir / "status.yaml"
    if status.is_file() and (outcome := (yaml.safe_load(status.read_text()) or {}).get("status")) in FINISHED:
        return f"{name}: already {'done' if outcome == 'completed' else outcome}", True
    try:
        claim(run_dir, overwrite=True)  # another process of the study (a second run.py) may be running it
    except RunFolderTaken:
        return f"{name}: in use by another process; left to it", True
    try:
        cfg, choices = compose(*overrides)
        check_versions(run_dir, force)  # a run that started: go on only under the versions it ran under, unless forced
        summary = run(cfg, run_dir, choices, quiet=True, resume=True)  # from its checkpoint, if it has one
    except Diverged as diverged:
        return f"{name}: diverged: {diverged}", True
    except Exception as error:  # pylint: disable=broad-exception-caught  (the study goes on; the line says why)
        return f"{name}: failed: {type(error).__name__}: {error}", False
    accuracy = summary.final.get("centralized_accuracy", float("nan"))
    return f"{name}: test accuracy {accuracy:.4f} in {summary.seconds:.0f} s", True


def analysis_folder(here: Path, description: str, argv: list[str] | None = None) -> Path:
    """Where a study's ``analyze.py`` writes its table and figure, from its command line.

    ``scratch/`` next to the script by default, ``--out DIR``, or the committed files next
    to the script with ``--update`` (only when asked).
    """
    import argparse

    parser = argparse.ArgumentParser(description=description)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--update", action="store_true", help="overwrite the committed results next to this script")
    where.add_argument("--out", type=Path, help="write into this folder (default: scratch/ next to this script)")
    args = parser.parse_args(argv)
    out = here if args.update else args.out or here / "scratch"
    out.mkdir(parents=True, exist_ok=True)
    return out
