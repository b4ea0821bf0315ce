"""Run the NIID-Bench-style study: FedAvg, FedProx, SCAFFOLD, FedNova on Fashion-MNIST.

Four partitions of Fashion-MNIST's 60,000 training images over 10 clients (IID,
Dirichlet(0.5), Dirichlet(0.1), two classes per client), every client every round,
3 seeds. Runs go to ``runs/PARTITION/STRATEGY/seed_N``; completed ones are skipped on
a rerun, so the study can be stopped and resumed.

    python experiments/niid_fashion_mnist/run.py --jobs 2 [--rounds 20] [--seeds 0 1 2]
"""

import argparse
from pathlib import Path

from fedsim.study import run_study

HERE = Path(__file__).parent

# NIID-Bench's layout (Li et al. 2022): 10 clients, all of them every round. Reduced to
# fit 2 CPU cores: the 2NN MLP instead of the CNN, 20 rounds of 5 local epochs instead of
# 50 of 10, plain SGD at lr 0.05 (NIID-Bench: lr 0.01 with momentum 0.9); batch 64 as there.
COMMON = [
    "dataset=fashion_mnist",
    "num_clients=10",
    "model=mlp",
    "client.local_epochs=5",
    "client.batch_size=64",
    "client.lr=0.05",
]
PARTITIONS = {
    "iid": ["partitioner=iid"],
    "dirichlet_0.5": ["partitioner=dirichlet", "partitioner.alpha=0.5"],
    "dirichlet_0.1": ["partitioner=dirichlet", "partitioner.alpha=0.1"],
    "two_classes": ["partitioner=pathological", "partitioner.num_classes_per_partition=2"],
}
STRATEGIES = {
    "fedavg": ["strategy=fedavg"],
    "fedprox": ["strategy=fedprox", "strategy.proximal_mu=0.01"],
    "scaffold": ["strategy=scaffold"],
    "fednova": ["strategy=fednova"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    runs = {
        f"{partition}/{strategy}/seed_{seed}": [
            *COMMON, *partition_overrides, *strategy_overrides, f"seed={seed}", f"num_rounds={args.rounds}"
        ]
        for seed in args.seeds
        for partition, partition_overrides in PARTITIONS.items()
        for strategy, strategy_overrides in STRATEGIES.items()
    }
    run_study(runs, HERE / "runs", jobs=args.jobs)


if __name__ == "__main__":
    main()
