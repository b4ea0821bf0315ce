"""Run the keyword-spotting study: speakers as clients, FedAvg, FedProx and SCAFFOLD against centralized training.

dataset=keywords (espeak-ng): 20 keywords, 40 training speakers (one client each) and 10
test speakers never heard in training, 5 clips of each keyword per speaker; TC-ResNet8
(model=kws_cnn) on 40 log-mel bins x 98 frames. Federated: 20 of the 40 clients a
round, 2 local epochs of batch 20, plain SGD at lr 0.1, 40 rounds. Centralized: the same
model and optimizer with one client holding every training clip (partitioner=iid
num_clients=1), one epoch a round, so that round r of every method has trained on the
same number of examples. Runs go to ``runs/METHOD/seed_N``; completed runs are skipped
and the others resume from their last checkpoint when started again.

    python experiments/keyword_spotting/run.py --jobs 2 [--seeds 0 1 2] [--methods fedavg centralized]

Each seed generates its own speakers (dataset.seed follows seed); the clips of a seed
are generated once, before the runs, into the keywords cache.
"""

import argparse
import os
from pathlib import Path

from fedsim.study import run_study

HERE = Path(__file__).parent
COMMON = [
    "dataset=keywords",
    "model=kws_cnn",
    "num_rounds=40",
    "client.batch_size=20",
    "client.lr=0.1",
    "optimizer=sgd",
    "checkpoint.every=5",
]
FEDERATED = ["partitioner=natural", "num_clients=40", "clients_per_round=20", "client.local_epochs=2"]
METHODS = {
    "fedavg": [*FEDERATED, "strategy=fedavg"],
    "fedprox": [*FEDERATED, "strategy=fedprox", "strategy.proximal_mu=0.01"],
    "scaffold": [*FEDERATED, "strategy=scaffold"],
    # one client with all the training clips: FedAvg of one model is plain minibatch SGD
    "centralized": ["partitioner=iid", "num_clients=1", "clients_per_round=1", "client.local_epochs=1",
                    "strategy=fedavg"],
}


def generate(seeds: list[int]) -> None:
    """Generate (or find in the cache) every seed's clips once, before the runs read them in parallel."""
    from fedsim.compose import compose
    from fedsim.instantiate import build

    for seed in seeds:
        cfg, _ = compose(*COMMON, *METHODS["fedavg"], f"seed={seed}")
        data = build(cfg.dataset)
        print(f"seed {seed}: {len(data.train)} training clips of {len(set(data.train['speaker_id']))} speakers, "
              f"{len(data.test)} test clips of {len(set(data.test['speaker_id']))} others", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--force", action="store_true", help="resume runs started under other versions too")
    args = parser.parse_args()
    os.environ["TQDM_DISABLE"] = "1"  # before flwr-datasets imports tqdm: the workers inherit it
    generate(args.seeds)
    runs = {
        f"{method}/seed_{seed}": [*COMMON, *METHODS[method], f"seed={seed}"]
        for seed in args.seeds
        for method in args.methods
    }
    run_study(runs, HERE / "runs", jobs=args.jobs, force=args.force)


if __name__ == "__main__":
    main()
