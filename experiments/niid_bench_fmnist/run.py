"""Run the NIID-Bench study on Fashion-MNIST at the settings of Flower's niid_bench baseline.

FedAvg, FedProx (mu 0.01), SCAFFOLD and FedNova on IID and Dirichlet(0.5) partitions
of Fashion-MNIST's 60,000 training images over 10 clients, all of them every round,
50 rounds of 10 local epochs, batch 64, SGD at lr 0.01 with momentum 0.9 and weight
decay 1e-5, LeNet-5, whole partitions (no local evaluation share). Runs go to
``runs/PARTITION/STRATEGY/seed_N``; each writes a checkpoint every round, so a stopped
or killed study goes on where it was when started again (completed runs are skipped).

    python experiments/niid_bench_fmnist/run.py --jobs 2 [--seeds 0] [--partitions iid dirichlet_0.5] [--force]

A run that started under another fedsim commit is refused unless ``--force`` (its
versions.yaml then records ``resumed_under``): resume only across commits that change no
computation, or run the study from a fixed checkout.
"""

import argparse
from pathlib import Path

from fedsim.study import run_study

HERE = Path(__file__).parent

# Flower's niid_bench baseline (baselines/niid_bench/niid_bench/conf/*_base.yaml), from
# NIID-Bench (Li, Diao, Chen, He 2022): its settings, as fedsim spells them.
COMMON = [
    "dataset=fashion_mnist",  # pixels scaled to [0, 1], no normalization (the baseline's ToTensor)
    "num_clients=10",
    "clients_per_round=10",
    "eval_clients_per_round=0",  # the baseline evaluates centrally only (fraction_evaluate 0)
    "client.eval_fraction=0",  # whole partitions (val_split 0)
    "model=lenet5",
    "num_rounds=50",
    "client.local_epochs=10",
    "client.batch_size=64",
    "client.lr=0.01",
    "optimizer=sgd",
    "optimizer.momentum=0.9",
    "optimizer.weight_decay=1e-5",
    "strategy.weighting=examples",  # FedAvg's example weighting, as the baseline's strategies
    "checkpoint.every=1",  # a round takes about a minute here: lose at most one to a kill
]
PARTITIONS = {
    "iid": ["partitioner=iid"],
    # the baseline's Dirichlet split: a client stops receiving once it holds 1/N of the data
    # (flwr-datasets' self_balancing), and every client holds at least 10 images
    "dirichlet_0.5": ["partitioner=dirichlet", "partitioner.alpha=0.5", "partitioner.self_balancing=true",
                      "partitioner.min_partition_size=10"],
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
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--partitions", nargs="+", choices=list(PARTITIONS), default=["iid", "dirichlet_0.5"])
    parser.add_argument("--strategies", nargs="+", choices=list(STRATEGIES), default=list(STRATEGIES))
    parser.add_argument("--force", action="store_true", help="resume runs started under other versions too")
    args = parser.parse_args()
    runs = {
        f"{partition}/{strategy}/seed_{seed}": [
            *COMMON, *PARTITIONS[partition], *STRATEGIES[strategy], f"seed={seed}"
        ]
        for seed in args.seeds
        for partition in args.partitions
        for strategy in args.strategies
    }
    run_study(runs, HERE / "runs", jobs=args.jobs, force=args.force)


if __name__ == "__main__":
    main()
