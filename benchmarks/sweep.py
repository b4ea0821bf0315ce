"""What a Hydra sweep pays per run beyond the run's own work.

    python benchmarks/sweep.py --engine local --runs 4
    python benchmarks/sweep.py --engine ray --runs 3

Runs the W1 workload of speed.py with seeds 0..N-1 twice: as one sweep
(``fedsim -m seed=0,1,...``, one process) and as N separate ``fedsim`` processes.
Prints, for each run of the sweep, the seconds its ``status.yaml`` records (data,
engine start and rounds), and the wall time of both ways. Later runs of a sweep that
cost no more than the first run minus its start-up show that start-up is paid once.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

W1 = [
    "dataset=digits", "model=mlp", "partitioner=iid", "num_clients=100", "clients_per_round=10",
    "eval_clients_per_round=0", "num_rounds=20", "client.local_epochs=1", "client.batch_size=10",
    "client.lr=0.05", "quiet=true",
]


def fedsim(*overrides: str) -> float:
    """Wall seconds of one ``fedsim`` process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fedsim.cli", *overrides], check=True, capture_output=True)
    return time.perf_counter() - started


def run_seconds(run_dir: Path) -> float:
    return float(yaml.safe_load((run_dir / "status.yaml").read_text())["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["local", "ray"], default="local")
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    seeds = ",".join(str(seed) for seed in range(args.runs))
    with tempfile.TemporaryDirectory() as folder:
        sweep_dir = Path(folder) / "sweep"
        sweep_wall = fedsim("-m", f"seed={seeds}", *W1, f"engine={args.engine}", f"hydra.sweep.dir={sweep_dir}")
        in_sweep = [run_seconds(sweep_dir / str(index)) for index in range(args.runs)]
        separate_wall, separate = 0.0, []
        for seed in range(args.runs):
            run_dir = Path(folder) / f"single_{seed}"
            separate_wall += fedsim(f"seed={seed}", *W1, f"engine={args.engine}", f"hydra.run.dir={run_dir}")
            separate.append(run_seconds(run_dir))
    print(f"engine={args.engine}, W1, {args.runs} runs (seeds 0..{args.runs - 1})")
    print("| run | seconds in one sweep | seconds as its own process |")
    print("|---|---|---|")
    for index, (swept, alone) in enumerate(zip(in_sweep, separate, strict=True)):
        print(f"| seed {index} | {swept:.2f} | {alone:.2f} |")
    print(f"| wall, all runs | {sweep_wall:.2f} | {separate_wall:.2f} |")


if __name__ == "__main__":
    main()
