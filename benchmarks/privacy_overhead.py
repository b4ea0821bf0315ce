"""Measure what differential privacy costs in time: the same run with and without it.

    python benchmarks/privacy_overhead.py [--rounds 10]

Digits over 100 IID clients, 10 per round, the 2NN MLP, 1 local epoch at batch 10
(the speed benchmark's W1). Each variant runs in its own subprocess on engine=local;
the ratio compares the median round time (local training, aggregation, centralized
evaluation) with the non-private run's, and whole-process times include start-up
(importing Opacus is part of local DP's cost).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

WORKLOAD = [
    "dataset=digits",
    "partitioner=iid",
    "model=mlp",
    "num_clients=100",
    "clients_per_round=10",
    "eval_clients_per_round=0",
    "client.local_epochs=1",
    "client.batch_size=10",
    "client.lr=0.05",
]
VARIANTS = {
    "none": ["privacy=none"],
    "local_dp": ["privacy=local_dp", "privacy.noise_multiplier=1.0", "privacy.max_grad_norm=1.0"],
    "local_dp_prv": ["privacy=local_dp", "privacy.noise_multiplier=1.0", "privacy.accountant=prv"],
    "central_dp": ["privacy=central_dp", "privacy.noise_multiplier=1.0", "privacy.clipping_norm=1.0", "strategy.weighting=uniform"],
}


def child(overrides: list[str], run_dir: str) -> dict:
    """Run one variant in this process; its round times from metrics.csv."""
    from fedsim.compose import compose
    from fedsim.results import load
    from fedsim.runner import run

    cfg, choices = compose(*overrides)
    summary = run(cfg, run_dir, choices, quiet=True)
    frame = load(run_dir)
    rounds = frame[(frame.metric == "round_seconds") & frame.client.isna()].value.tolist()
    return {"round_seconds": rounds, "run_seconds": summary.seconds}


def measure(name: str, overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        output = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(overrides), run_dir],
            check=True, capture_output=True, text=True,
        ).stdout
        result = json.loads(output.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    result["median_round"] = statistics.median(result["round_seconds"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child[0]), args.child[1])))
        return
    results = {
        name: measure(name, [*WORKLOAD, f"num_rounds={args.rounds}", *overrides]) for name, overrides in VARIANTS.items()
    }
    reference = results["none"]
    print(f"{'variant':<14}{'median round':>14}{'ratio':>8}{'whole process':>16}{'ratio':>8}")
    for name, result in results.items():
        print(
            f"{name:<14}{result['median_round']:>12.3f} s{result['median_round'] / reference['median_round']:>8.2f}"
            f"{result['process_seconds']:>14.1f} s{result['process_seconds'] / reference['process_seconds']:>8.2f}"
        )


if __name__ == "__main__":
    main()
