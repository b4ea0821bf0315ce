"""Run the privacy-utility study: test accuracy against epsilon on digits, local and central DP.

Every (mechanism, noise multiplier, seed) is one fedsim run in ``runs/``; runs that
already completed are skipped, so the study can be stopped and resumed.

    python experiments/privacy_utility/run.py --jobs 2 [--seeds 0 1 2]
"""

import argparse
import itertools
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).parent
RUNS = HERE / "runs"

# scikit-learn's bundled digits over 20 IID clients (about 65 training examples each),
# 10 drawn per round, multinomial logistic regression, 30 rounds of one local epoch at
# batch size 10 and lr 0.1. Small enough for the whole study to take minutes on 2 cores.
COMMON = [
    "dataset=digits",
    "partitioner=iid",
    "model=logreg",
    "num_clients=20",
    "clients_per_round=10",
    "eval_clients_per_round=0",
    "num_rounds=30",
    "client.local_epochs=1",
    "client.batch_size=10",
    "client.lr=0.1",
]
DELTA = 1e-5
# Example-level DP-SGD on every client: per-example clipping norm 1.
LOCAL = ["privacy=local_dp", "privacy.max_grad_norm=1.0", f"privacy.target_delta={DELTA}"]
LOCAL_NOISE = [0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0]
# Client-level DP: Flower's server-side fixed clipping of each update to norm 1; the clipped
# updates' plain mean, which the noise (noise_multiplier * 1.0 / 10) covers.
CENTRAL = ["privacy=central_dp", "privacy.side=server", "privacy.clipping_norm=1.0", f"privacy.target_delta={DELTA}",
           "strategy.weighting=uniform"]
CENTRAL_NOISE = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 3.0]


def study(seeds: list[int]) -> list[tuple[str, list[str]]]:
    """(run name, overrides) of every run of the study."""
    grid = [("none/noise_0", ["privacy=none"])]
    grid += [(f"local_dp/noise_{noise}", [*LOCAL, f"privacy.noise_multiplier={noise}"]) for noise in LOCAL_NOISE]
    grid += [(f"central_dp/noise_{noise}", [*CENTRAL, f"privacy.noise_multiplier={noise}"]) for noise in CENTRAL_NOISE]
    return [
        (f"{name}/seed_{seed}", [*COMMON, *overrides, f"seed={seed}"])
        for (name, overrides), seed in itertools.product(grid, seeds)
    ]


def run_one(name: str, overrides: list[str]) -> str:
    import torch
    import yaml

    os.environ["TQDM_DISABLE"] = "1"

    from fedsim.compose import compose

    torch.set_num_threads(1)  # one core per job
    from fedsim.runner import run

    run_dir = RUNS / name
    status = run_dir / "status.yaml"
    if status.is_file() and yaml.safe_load(status.read_text()).get("status") == "completed":
        return f"{name}: already done"
    cfg, choices = compose(*overrides)
    summary = run(cfg, run_dir, choices, quiet=True)
    return (
        f"{name}: test accuracy {summary.final.get('centralized_accuracy', float('nan')):.4f}, "
        f"epsilon {summary.final.get('train_epsilon', 0.0):.3g} in {summary.seconds:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for line in pool.map(run_one, *zip(*study(args.seeds))):
            print(line, flush=True)


if __name__ == "__main__":
    main()
