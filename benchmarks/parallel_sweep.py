"""A sweep on 2 joblib workers against the same sweep run one job after the other.

    python benchmarks/parallel_sweep.py --repeats 3

One sweep of 8 runs of W2 (speed.py's McMahan CNN on the digits, 100 IID clients, 10
per round, 5 local epochs, batch 10, lr 0.05, no federated evaluation) at 25 rounds
each, seeds 0..7, as one ``fedsim -m`` process: once with ``hydra/launcher=joblib
hydra.launcher.n_jobs=2`` and once with Hydra's basic launcher (sequential), side by
side, the order alternating between repeats. Prints a Markdown table of wall times,
runs per minute and the throughput ratio, and checks that every run's metrics (all
rounds, timings left out) are the same under both launchers.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from fedsim.results import COLUMNS, load

RUNS = 8
W2 = [
    "dataset=digits", "model=cnn", "partitioner=iid", "num_clients=100", "clients_per_round=10",
    "eval_clients_per_round=0", "num_rounds=25", "client.local_epochs=5", "client.batch_size=10",
    "client.lr=0.05", f"seed={','.join(str(seed) for seed in range(RUNS))}",
]
LAUNCHERS = {
    "joblib, 2 workers": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "basic (sequential)": [],
}


def sweep(launcher: str, sweep_dir: Path) -> float:
    """Wall seconds of one ``fedsim -m`` process running the whole sweep."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "fedsim.cli", "-m", *W2, *LAUNCHERS[launcher], f"hydra.sweep.dir={sweep_dir}"]
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def metrics(sweep_dir: Path) -> pd.DataFrame:
    """Every run's metrics without timings, one row per (run, round, stage, client, metric)."""
    frames = []
    for number in range(RUNS):
        frame = load(sweep_dir / str(number))[COLUMNS]
        frames.append(frame[~frame["metric"].str.endswith("_seconds")].assign(job=number))
    return pd.concat(frames).sort_values(["job", "round", "stage", "client", "metric"]).reset_index(drop=True)


def run_seconds(sweep_dir: Path) -> list[float]:
    return [float(yaml.safe_load((sweep_dir / str(n) / "status.yaml").read_text())["seconds"]) for n in range(RUNS)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="pairs of sweeps, the order alternating")
    args = parser.parse_args()
    rows, same = [], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            order = list(LAUNCHERS) if repeat % 2 == 0 else list(reversed(LAUNCHERS))
            walls, dirs = {}, {}
            for launcher in order:
                dirs[launcher] = Path(folder) / f"{repeat}-{launcher.split(',')[0].split()[0]}"
                walls[launcher] = sweep(launcher, dirs[launcher])
            parallel, sequential = walls["joblib, 2 workers"], walls["basic (sequential)"]
            for launcher in order:
                seconds = run_seconds(dirs[launcher])
                rows.append(
                    f"| {repeat + 1} | {launcher} | {walls[launcher]:.1f} | {RUNS / walls[launcher] * 60:.2f} | "
                    f"{sum(seconds) / RUNS:.2f} | {sequential / walls[launcher]:.2f} |"
                )
            frames = [metrics(dirs[launcher]) for launcher in LAUNCHERS]
            same.append(frames[0].equals(frames[1]))
            finals = [frame[frame["round"] == frame["round"].max()] for frame in frames]
            print(f"repeat {repeat + 1}: joblib {parallel:.1f} s, basic {sequential:.1f} s, "
                  f"ratio {sequential / parallel:.2f}; final metrics the same: {finals[0].equals(finals[1])}; "
                  f"all metrics the same: {same[-1]}", file=sys.stderr)
    print(f"W2 at 25 rounds, {RUNS} runs (seeds 0..{RUNS - 1}) in one `fedsim -m` sweep")
    print()
    print("| repeat | launcher | wall (s) | runs per minute | mean run seconds (status.yaml) | throughput x basic |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print(f"Every run's metrics (all rounds, timings left out) the same under both launchers: "
          f"{'yes' if all(same) else 'NO'} ({sum(same)} of {len(same)} pairs).")


if __name__ == "__main__":
    main()
