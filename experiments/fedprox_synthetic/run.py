"""Run the FedProx study on Synthetic data with stragglers (Li et al. 2020, Figure 1).

Every (dataset, method, straggler fraction, seed) is one fedsim run in ``runs/``; runs
that already completed are skipped, so the study can be stopped and resumed.

    python experiments/fedprox_synthetic/run.py --jobs 2 [--rounds 200] [--seeds 0 1 2]
"""

import argparse
import itertools
from pathlib import Path

from fedsim.study import run_study

HERE = Path(__file__).parent
RUNS = HERE / "runs"

# The paper's setup: 30 users, multinomial logistic regression, lr 0.01, batch 10,
# E = 20, 10 clients per round. The data are generated once (dataset.seed=0); the
# run seed decides model init, sampling, stragglers and data order.
COMMON = [
    "dataset=synthetic",
    "dataset.num_users=30",
    "dataset.seed=0",
    "partitioner=natural",
    "num_clients=30",
    "clients_per_round=10",
    "eval_clients_per_round=0",
    "model=logreg",
    "client.lr=0.01",
    "client.batch_size=10",
    "client.local_epochs=20",
    "centralized_train_metrics=true",
]
DATASETS = {
    "synthetic_iid": ["dataset.iid=true"],
    "synthetic_0_0": ["dataset.alpha=0", "dataset.beta=0"],
    "synthetic_0.5_0.5": ["dataset.alpha=0.5", "dataset.beta=0.5"],
    "synthetic_1_1": ["dataset.alpha=1", "dataset.beta=1"],
}
# FedAvg drops stragglers, FedProx keeps their partial work (the paper's comparison).
METHODS = {
    "fedavg": ["strategy=fedavg", "drop_stragglers=true"],
    "fedprox_mu0": ["strategy=fedprox", "strategy.proximal_mu=0", "drop_stragglers=false"],
    "fedprox_mu1": ["strategy=fedprox", "strategy.proximal_mu=1", "drop_stragglers=false"],
}
STRAGGLERS = [0.0, 0.5, 0.9]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    runs = {}
    for (dataset, data_args), (method, method_args), stragglers, seed in itertools.product(
        DATASETS.items(), METHODS.items(), STRAGGLERS, args.seeds
    ):
        name = f"{dataset}/{method}/stragglers_{stragglers}/seed_{seed}"
        overrides = [*COMMON, *data_args, *method_args, f"stragglers={stragglers}", f"seed={seed}",
                     f"num_rounds={args.rounds}"]
        runs[name] = overrides
    run_study(runs, RUNS, jobs=args.jobs)


if __name__ == "__main__":
    main()
