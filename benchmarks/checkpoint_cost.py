"""What checkpoints cost a W1 run: whole-process time with checkpoint.every = 0, 5 and 1, side by side.

    python benchmarks/checkpoint_cost.py --repeats 5

Each repeat runs the three settings one after the other, each as its own `fedsim`
process (start-up included), and prints a Markdown table of the medians. A second
table times, inside one process per setting, the calls that make checkpoints (fetching
the nodes' state, collecting the server state, writing the file) and sets their sum
against the median whole-process time of the same setting (the issue's budget: 5%).
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import WORKLOADS, fedsim_command  # noqa: E402  (benchmarks/ is not a package)

SETTINGS = (0, 5, 1)


def whole_process_seconds(every: int, folder: Path) -> float:
    command = [*fedsim_command(WORKLOADS["W1"], "b", folder / f"every-{every}-{time.monotonic_ns()}"),
               f"checkpoint.every={every}", "quiet=true"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def checkpoint_seconds(every: int, folder: Path) -> tuple[float, float]:
    """Seconds spent making checkpoints in a run in this process, and the run's seconds."""
    from hydra import compose, initialize_config_module

    import fedsim.apps
    from fedsim.config import register_schemas
    from fedsim.runner import run

    spent = [0.0]

    def timed(function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started

        return wrapper

    originals = {name: getattr(fedsim.apps, name) for name in ("save", "node_states", "server_state")}
    for name, function in originals.items():
        setattr(fedsim.apps, name, timed(function))
    command = fedsim_command(WORKLOADS["W1"], "b", folder / f"in-process-{every}")
    overrides = [arg for arg in command[3:] if not arg.startswith("hydra.")] + [f"checkpoint.every={every}"]
    register_schemas()
    with initialize_config_module("fedsim.conf", version_base=None):
        cfg = compose("config", overrides=overrides)
    try:
        summary = run(cfg, folder / f"in-process-{every}", quiet=True)
    finally:
        for name, function in originals.items():
            setattr(fedsim.apps, name, function)
    return spent[0], summary.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        seconds = {every: [] for every in SETTINGS}
        for _ in range(args.repeats):
            for every in SETTINGS:
                seconds[every].append(whole_process_seconds(every, folder))
        base = statistics.median(seconds[0])
        print("| checkpoint.every | whole process (s), median | each repeat (s) | x every=0 |")
        print("|---|---|---|---|")
        for every in SETTINGS:
            median = statistics.median(seconds[every])
            each = ", ".join(f"{value:.2f}" for value in seconds[every])
            print(f"| {every} | {median:.2f} | {each} | {median / base:.3f} |")
        print()
        checkpoint_seconds(0, folder)  # the first run in a process loads the data: leave it out
        print("| checkpoint.every | checkpoints in one run (s) | share of the whole process |")
        print("|---|---|---|")
        for every in SETTINGS[1:]:
            spent, _ = checkpoint_seconds(every, folder)
            print(f"| {every} | {spent:.3f} | {spent / statistics.median(seconds[every]):.1%} |")


if __name__ == "__main__":
    main()
