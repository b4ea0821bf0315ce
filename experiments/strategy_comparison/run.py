"""Run every strategy of conf/strategy on one non-IID setting of a real dataset, 3 seeds.

Setting: scikit-learn's digits, 20 clients with Dirichlet(0.1) label skew, the 2NN
MLP, all clients every round, 5 local epochs of batch 10 at lr 0.05, 30 rounds; each
strategy with the hyperparameters of its conf/strategy/NAME.yaml. Runs go to ``runs/``
and completed ones are skipped on a rerun.

    python experiments/strategy_comparison/run.py --jobs 2 [--rounds 30] [--seeds 0 1 2]
"""

import argparse
from importlib import resources
from pathlib import Path

from fedsim.study import run_study

HERE = Path(__file__).parent
SETTING = ["dataset=digits", "partitioner=dirichlet", "partitioner.alpha=0.1", "num_clients=20", "model=mlp"]


def strategies() -> list[str]:
    """Every option of the strategy config group."""
    folder = resources.files("fedsim.conf").joinpath("strategy")
    return sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    runs = {
        f"{strategy}/seed_{seed}": [*SETTING, f"strategy={strategy}", f"seed={seed}", f"num_rounds={args.rounds}"]
        for strategy in strategies()
        for seed in args.seeds
    }
    run_study(runs, HERE / "runs", jobs=args.jobs)


if __name__ == "__main__":
    main()
