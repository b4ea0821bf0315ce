"""Time fedsim against a plain PyTorch FedAvg loop and stock Flower, side by side.

    python benchmarks/speed.py --workload W1
    python benchmarks/speed.py --workload R18 --device cuda --variants abcd   # on a GPU

Each variant runs as its own subprocess, so whole-process times include start-up
(imports, data, Ray). Per-round time is the median over rounds; peak memory is the
peak of the summed RSS of the variant's process tree (forked workers share pages,
so they are counted more than once).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOADS = {
    # digits, 100 IID clients, 10 per round, 2NN MLP, 1 epoch, batch 10, lr 0.05
    "W1": dict(dataset="digits", model="mlp", clients=100, per_round=10, epochs=1, rounds=20),
    # the same federation with McMahan's CNN and 5 local epochs: compute dominates
    "W2": dict(dataset="digits", model="cnn", clients=100, per_round=10, epochs=5, rounds=5),
    # Synthetic IID over 1000 users (about 322k training rows) split over 10,000 IID
    # clients, 100 per round; "W3-100" is the same data over 100 clients
    "W3": dict(dataset="synthetic", model="logreg", clients=10_000, per_round=100, epochs=1, rounds=5),
    "W3-100": dict(dataset="synthetic", model="logreg", clients=100, per_round=100, epochs=1, rounds=5),
    # CIFAR-10's sizes (50,000 3x32x32 training and 10,000 test images of random pixels and
    # labels), 100 IID clients, 10 per round, fedsim's ResNet-18, 1 epoch, batch 32: for a GPU
    "R18": dict(dataset="cifar_shaped", model="resnet18", clients=100, per_round=10, epochs=1, rounds=5, batch=32),
}
CIFAR_SHAPED = dict(train=50_000, test=10_000, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
SYNTHETIC_USERS = 1000
VARIANTS = {
    "a": "plain PyTorch loop",
    "b": "fedsim engine=local",
    "c": "fedsim engine=local, 2 workers",
    "d": "fedsim engine=ray",
    "e": "stock Flower run_simulation",
}
BATCH, LR, EVAL_FRACTION, SEED = 10, 0.05, 0.1, 0  # BATCH unless the workload sets its own


# --- the child processes ---------------------------------------------------------------


def load_arrays(workload: dict):
    """(train_x, train_y, test_x, test_y) as numpy arrays, split as fedsim splits them."""
    import numpy as np

    if workload["dataset"] == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = (bunch.images / 16.0).astype(np.float32)[:, None]
        order = np.random.default_rng(SEED).permutation(len(x))
        num_test = round(0.2 * len(x))
        test, train = order[:num_test], order[num_test:]
        return x[train], bunch.target[train], x[test], bunch.target[test]
    if workload["dataset"] == "cifar_shaped":
        train_x, train_y, test_x, test_y = cifar_shaped_pixels(workload)
        mean, std = (np.array(CIFAR_SHAPED[k], dtype=np.float32)[None, :, None, None] for k in ("mean", "std"))

        def normalized(pixels):  # as fedsim's cifar10 option: / 255, then per channel
            return ((pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255.0 - mean) / std).astype(np.float32)

        return normalized(train_x), train_y, normalized(test_x), test_y
    from fedsim.data.synthetic import generate_synthetic  # a numpy generator, no fedsim machinery

    data = generate_synthetic(0.0, 0.0, iid=True, num_users=SYNTHETIC_USERS, seed=SEED)
    is_test = np.zeros(len(data.y), dtype=bool)
    for user in range(SYNTHETIC_USERS):
        rows = np.flatnonzero(data.user == user)
        is_test[rows[-max(1, round(0.1 * len(rows))) :]] = True
    return data.x[~is_test], data.y[~is_test], data.x[is_test], data.y[is_test]


def cifar_shaped_pixels(workload: dict):
    """R18's random images (uint8, height x width x channels) and labels, drawn from SEED."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    num_train = workload.get("examples", CIFAR_SHAPED["train"])
    sizes = num_train, num_train * CIFAR_SHAPED["test"] // CIFAR_SHAPED["train"]
    train_x, test_x = (rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8) for n in sizes)
    train_y, test_y = (rng.integers(0, 10, size=n) for n in sizes)
    return train_x, train_y, test_x, test_y


def cifar_shaped_parquet(workload: dict, folder: Path) -> dict[str, str]:
    """R18's images as parquet files with CIFAR-10's hub schema (img, label), for fedsim's cifar10 option."""
    import datasets

    train_x, train_y, test_x, test_y = cifar_shaped_pixels(workload)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    files = {}
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        files[split] = str(folder / f"{split}.parquet")
        datasets.Dataset.from_dict({"img": list(x), "label": y}, features=features).to_parquet(files[split])
    return files


def iid_partitions(num_examples: int, num_clients: int) -> list:
    """Shuffled indices cut into contiguous blocks, as flwr-datasets' IidPartitioner cuts."""
    import numpy as np

    order = np.random.default_rng(SEED).permutation(num_examples)
    return np.array_split(order, num_clients)


def build_model(workload: dict, input_shape: tuple):
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    if workload["model"] == "resnet18":
        from fedsim.models import ResNet18  # the same network as fedsim's model=resnet18

        return ResNet18(input_shape, 10, num_groups=2)
    if workload["model"] == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, 10))
    if workload["model"] == "logreg":
        return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(input_shape).prod()), 10))
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 2 * 2, 512), nn.ReLU(), nn.Linear(512, 10),
    )


def local_sgd(model, x, y, epochs: int, seed: int, batch_size: int = BATCH) -> None:
    import torch
    from torch.nn import functional as F

    generator = torch.Generator().manual_seed(seed)
    parameters = list(model.parameters())
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator).to(x.device)
        for start in range(0, len(y), batch_size):
            batch = order[start : start + batch_size]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            gradients = torch.autograd.grad(loss, parameters)
            with torch.no_grad():
                for parameter, gradient in zip(parameters, gradients):
                    parameter.add_(gradient, alpha=-LR)


def accuracy(model, x, y, batch_size: int = 1024) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        hits = sum((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum() for i in range(0, len(y), batch_size))
    return hits.item() / len(y)


def child_plain(workload: dict) -> dict:
    """(a) FedAvg written out: the compute floor."""
    import copy

    import numpy as np
    import torch

    torch.set_num_threads(1)
    device = torch.device(workload["device"])  # every tensor lives there from the start
    train_x, train_y, test_x, test_y = load_arrays(workload)
    train_x, train_y = torch.from_numpy(train_x).to(device), torch.from_numpy(train_y).long().to(device)
    test_x, test_y = torch.from_numpy(test_x).to(device), torch.from_numpy(test_y).long().to(device)
    clients = []
    for pid, rows in enumerate(iid_partitions(len(train_y), workload["clients"])):
        keep = np.random.default_rng([SEED, pid]).permutation(len(rows))
        rows = rows[keep[max(1, round(EVAL_FRACTION * len(rows))) :]]  # fedsim keeps 10% for evaluation
        clients.append(torch.from_numpy(rows).to(device))
    model = build_model(workload, tuple(train_x.shape[1:])).to(device)
    local = copy.deepcopy(model)
    round_ends, acc = [time.perf_counter()], accuracy(model, test_x, test_y)
    for server_round in range(1, workload["rounds"] + 1):
        sampled = np.random.default_rng([SEED, server_round]).choice(len(clients), workload["per_round"], replace=False)
        total = [torch.zeros_like(p) for p in model.parameters()]
        weights = 0
        for pid in sorted(sampled):
            rows = clients[pid]
            local.load_state_dict(model.state_dict())
            local_sgd(local, train_x[rows], train_y[rows], workload["epochs"], seed=server_round * 100_000 + int(pid),
                      batch_size=workload.get("batch", BATCH))
            for t, p in zip(total, local.parameters()):
                t.add_(p.detach(), alpha=len(rows))
            weights += len(rows)
        with torch.no_grad():
            for p, t in zip(model.parameters(), total):
                p.copy_(t / weights)
        acc = accuracy(model, test_x, test_y)
        round_ends.append(time.perf_counter())
    return {"round_seconds": [b - a for a, b in zip(round_ends, round_ends[1:])], "accuracy": acc}


_FLOWER_CLIENT_TENSORS: list = []  # filled once per Ray actor process


def flower_client_tensors(workload: dict) -> list:
    """(e)'s clients' training tensors, built once per process (a module-level cache:
    Ray pickles the ClientApp, and a cache local to child_flower cannot be pickled)."""
    if not _FLOWER_CLIENT_TENSORS:
        import numpy as np
        import torch

        train_x, train_y, _, _ = load_arrays(workload)
        for pid, rows in enumerate(iid_partitions(len(train_y), workload["clients"])):
            keep = np.random.default_rng([SEED, pid]).permutation(len(rows))
            rows = rows[keep[max(1, round(EVAL_FRACTION * len(rows))) :]]
            _FLOWER_CLIENT_TENSORS.append((torch.from_numpy(train_x[rows]), torch.from_numpy(train_y[rows]).long()))
    return _FLOWER_CLIENT_TENSORS


def child_flower(workload: dict) -> dict:
    """(e) Flower's own FedAvg and run_simulation with a ClientApp written here."""
    import logging

    import torch
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg
    from flwr.simulation import run_simulation

    logging.getLogger("flwr").setLevel(logging.WARNING)

    client_app = ClientApp()

    @client_app.train()
    def train(message: Message, context: Context) -> Message:
        torch.set_num_threads(1)
        pid = int(context.node_config["partition-id"])
        x, y = flower_client_tensors(workload)[pid]
        model = build_model(workload, tuple(x.shape[1:]))
        model.load_state_dict(message.content["arrays"].to_torch_state_dict())
        local_sgd(model, x, y, workload["epochs"], seed=int(message.content["config"]["server-round"]) * 100_000 + pid)
        content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord({"num-examples": len(y)})})
        return Message(content, reply_to=message)

    _, _, test_x, test_y = load_arrays(workload)
    test_x, test_y = torch.from_numpy(test_x), torch.from_numpy(test_y).long()
    round_ends, result = [], {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        model = build_model(workload, tuple(test_x.shape[1:]))

        def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
            model.load_state_dict(arrays.to_torch_state_dict())
            result["accuracy"] = accuracy(model, test_x, test_y)
            round_ends.append(time.perf_counter())
            return MetricRecord({"accuracy": result["accuracy"]})

        strategy = FedAvg(fraction_train=workload["per_round"] / workload["clients"], fraction_evaluate=0.0,
                          min_available_nodes=workload["clients"])
        strategy.start(grid, ArrayRecord(model.state_dict()), num_rounds=workload["rounds"],
                       train_config=ConfigRecord({}), evaluate_fn=evaluate)

    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=workload["clients"],
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}})
    return {"round_seconds": [b - a for a, b in zip(round_ends, round_ends[1:])], "accuracy": result["accuracy"]}


def fedsim_command(workload: dict, variant: str, run_dir: Path) -> list[str]:
    overrides = [
        f"num_clients={workload['clients']}", f"clients_per_round={workload['per_round']}",
        "eval_clients_per_round=0", f"num_rounds={workload['rounds']}", f"client.local_epochs={workload['epochs']}",
        f"client.batch_size={workload.get('batch', BATCH)}", f"client.lr={LR}", "partitioner=iid",
        f"model={workload['model']}", f"hydra.run.dir={run_dir}", f"device={workload.get('device', 'cpu')}",
    ]
    if workload["dataset"] == "cifar_shaped":  # the same pixels, through fedsim's hub-dataset path
        files = cifar_shaped_parquet(workload, run_dir.parent)
        overrides += ["dataset=cifar10", "dataset.path=parquet", f"dataset.data_files={{train:{files['train']},test:{files['test']}}}"]
    else:
        overrides += [f"dataset={workload['dataset']}"]
    if workload["dataset"] == "synthetic":
        overrides += ["dataset.iid=true", f"dataset.num_users={SYNTHETIC_USERS}"]
    on_gpu = workload.get("device", "cpu") != "cpu"
    ray = ["engine=ray"] + (["engine.client_resources.num_gpus=0.5"] if on_gpu else [])  # two actors share the GPU
    overrides += {"b": ["engine=local"], "c": ["engine=local", "engine.workers=2"], "d": ray}[variant]
    return [sys.executable, "-m", "fedsim.cli", *overrides]


# --- the parent: run each variant as a subprocess, measure it -----------------------------


def measure(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak summed RSS of the process tree (MiB), and stdout of ``command``."""
    import psutil

    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})
        root, peak = psutil.Process(process.pid), 0
        while process.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        out.seek(0)
        text = out.read()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{text[-3000:]}")
    return seconds, peak / 2**20, text


def run_variant(workload: dict, variant: str, argv: list[str]) -> dict:
    if variant in ("a", "e"):
        seconds, peak, text = measure([sys.executable, __file__, "--child", variant, *argv])
        report = json.loads(text.rsplit("BENCH ", 1)[1])
    else:
        import pandas as pd

        with tempfile.TemporaryDirectory() as folder:
            seconds, peak, _ = measure(fedsim_command(workload, variant, Path(folder)))
            frame = pd.read_csv(Path(folder) / "metrics.csv")
        rounds = frame[frame["metric"] == "round_seconds"]["value"].tolist()
        accuracy = frame[(frame["stage"] == "centralized") & (frame["metric"] == "accuracy")]["value"].iloc[-1]
        report = {"round_seconds": rounds, "accuracy": float(accuracy)}
    return {"variant": variant, "process_s": seconds, "round_s": statistics.median(report["round_seconds"]),
            "peak_mib": peak, "accuracy": report["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=WORKLOADS, default="W1")
    parser.add_argument("--variants", default="abcde", help="which of a-e to run, e.g. abc")
    parser.add_argument("--device", default="cpu", help="where the plain loop and fedsim compute: cpu, cuda, cuda:N")
    parser.add_argument("--rounds", type=int, help="instead of the workload's rounds (a quick check)")
    parser.add_argument("--examples", type=int, help="R18: instead of 50,000 training images, and a fifth as many test images (a quick check)")
    parser.add_argument("--child", choices=["a", "e"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    changed = {"device": args.device, "rounds": args.rounds, "examples": args.examples}
    workload = WORKLOADS[args.workload] | {key: value for key, value in changed.items() if value is not None}
    if args.child:
        report = (child_plain if args.child == "a" else child_flower)(workload)
        print("BENCH " + json.dumps(report))
        return
    if args.device != "cpu" and "e" in args.variants:
        parser.error("variant e (stock Flower) runs on the CPU only; leave it out with --variants")
    argv = ["--workload", args.workload, *[f"--{key}={value}" for key, value in changed.items() if value is not None]]
    rows = [run_variant(workload, v, argv) for v in args.variants]
    base = next((r for r in rows if r["variant"] == "a"), rows[0])
    print(f"{args.workload}: {workload}")
    print("| variant | per round (s) | x plain | whole process (s) | x plain | peak RSS (MiB) | final accuracy |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| ({r['variant']}) {VARIANTS[r['variant']]} | {r['round_s']:.4f} | {r['round_s'] / base['round_s']:.2f} "
              f"| {r['process_s']:.2f} | {r['process_s'] / base['process_s']:.2f} | {r['peak_mib']:.0f} | {r['accuracy']:.3f} |")


if __name__ == "__main__":
    main()
