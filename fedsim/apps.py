"""Flower ClientApp and ServerApp built from one resolved fedsim config."""

import functools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Strategy
from omegaconf import DictConfig, OmegaConf

from fedsim.data import Federation, build_partitioner
from fedsim.instantiate import build
from fedsim.models import build_model
from fedsim.recording import RoundRecorder
from fedsim.results import MetricsWriter
from fedsim.sampling import SeededSampling
from fedsim.training import evaluate, train_locally

PARTITION_ID_KEY = "partition-id"
NODE_WAIT_SECONDS = 0.05


def federation_key(cfg: DictConfig) -> str:
    """The part of ``cfg`` that decides the clients' data, as a YAML string."""
    data_keys = ["dataset", "partitioner", "num_clients", "seed", "client.eval_fraction"]
    return OmegaConf.to_yaml({k: OmegaConf.select(cfg, k) for k in data_keys}, resolve=True)


def load_federation(cfg: DictConfig) -> Federation:
    """The clients' data for ``cfg``, loaded once per process and shared by its clients."""
    return _load_federation(federation_key(cfg))


@functools.lru_cache(maxsize=2)
def _load_federation(key: str) -> Federation:
    cfg = OmegaConf.create(key)
    data = build(cfg.dataset)
    partitioner = build_partitioner(cfg.partitioner, data, cfg.num_clients, cfg.seed)
    return Federation(data, partitioner, cfg["client.eval_fraction"], cfg.seed)


def client_seed(seed: int, server_round: int, partition_id: int) -> int:
    """Seed of one client's local randomness in one round: the same on every engine."""
    return int(np.random.SeedSequence([seed, server_round, partition_id]).generate_state(1)[0])


class ClientWorkspace:
    """What the clients of one process share: the federation's data and one model.

    Each message loads its global weights into the shared model, so a process builds
    the model once, whatever number of clients it serves.
    """

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.data_key = federation_key(cfg)
        self._model: torch.nn.Module | None = None

    @property
    def federation(self) -> Federation:
        return _load_federation(self.data_key)

    def model_with(self, arrays: ArrayRecord) -> torch.nn.Module:
        if self._model is None:
            data = self.federation.data
            self._model = build_model(self.cfg.model, data.input_shape, data.num_classes, self.cfg.seed)
        self._model.load_state_dict(arrays.to_torch_state_dict())
        return self._model


def build_client_app(cfg: DictConfig) -> ClientApp:
    """A ClientApp whose nodes train and evaluate on their partition of ``cfg``'s dataset."""
    app = ClientApp()
    workspace = ClientWorkspace(cfg)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        partition_id = int(context.node_config[PARTITION_ID_KEY])
        client = workspace.federation.client(partition_id)
        model = workspace.model_with(message.content["arrays"])
        config = message.content["config"]
        metrics = train_locally(
            model,
            client.train_x,
            client.train_y,
            epochs=int(config["local-epochs"]),
            batch_size=int(config["batch-size"]),
            lr=float(config["lr"]),
            seed=client_seed(cfg.seed, int(config["server-round"]), partition_id),
        )
        metrics["num-examples"] = len(client.train_y)
        content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord(metrics)})
        return Message(content, reply_to=message)

    @app.evaluate()
    def evaluate_locally(message: Message, context: Context) -> Message:
        partition_id = int(context.node_config[PARTITION_ID_KEY])
        client = workspace.federation.client(partition_id)
        model = workspace.model_with(message.content["arrays"])
        metrics = evaluate(model, client.eval_x, client.eval_y)
        metrics["num-examples"] = len(client.eval_y)
        return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=message)

    @app.query()
    def partition(message: Message, context: Context) -> Message:
        partition_id = int(context.node_config[PARTITION_ID_KEY])
        return Message(RecordDict({"node": ConfigRecord({PARTITION_ID_KEY: partition_id})}), reply_to=message)

    return app


def discover_partitions(grid: Grid, num_nodes: int) -> dict[int, int]:
    """Ask every node for its partition id; waits until ``num_nodes`` nodes are connected."""
    while len(node_ids := list(grid.get_node_ids())) < num_nodes:
        time.sleep(NODE_WAIT_SECONDS)
    messages = [Message(RecordDict(), dst_node_id=node_id, message_type=MessageType.QUERY) for node_id in node_ids]
    replies = list(grid.send_and_receive(messages))
    failed = [reply.error.reason for reply in replies if reply.has_error()]
    if failed or len(replies) != len(node_ids):
        raise RuntimeError(f"{len(node_ids) - len(replies) + len(failed)} node(s) did not report a partition: {failed[:1]}")
    return {reply.metadata.src_node_id: int(reply.content["node"][PARTITION_ID_KEY]) for reply in replies}


def build_strategy(cfg: DictConfig) -> Strategy:
    """The configured strategy, set to take every node it is shown.

    fedsim draws each round's clients itself (``SeededSampling``) and shows the
    strategy only those.
    """
    return build(
        cfg.strategy,
        fraction_train=1.0,
        fraction_evaluate=1.0,
        min_train_nodes=1,
        min_evaluate_nodes=1,
        min_available_nodes=1,
    )


def build_server_app(
    cfg: DictConfig, run_dir: Path, on_round_end: Callable[[int, dict[str, float]], None]
) -> ServerApp:
    """A ServerApp running ``cfg``'s strategy with seeded sampling, recording into ``run_dir``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        federation = load_federation(cfg)
        data = federation.data
        model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed)
        test_x, test_y = federation.test_tensors()

        def centralized_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
            model.load_state_dict(arrays.to_torch_state_dict())
            return MetricRecord(evaluate(model, test_x, test_y))

        strategy = build_strategy(cfg)
        node_partitions = discover_partitions(grid, cfg.num_clients)
        sampled = SeededSampling(strategy, node_partitions, cfg.clients_per_round, cfg.eval_clients_per_round, cfg.seed)
        writer = MetricsWriter(run_dir)
        try:
            recorder = RoundRecorder(sampled, node_partitions, writer, on_round_end)
            result = recorder.start(
                grid,
                ArrayRecord(model.state_dict()),
                num_rounds=cfg.num_rounds,
                train_config=ConfigRecord(
                    {"lr": cfg.client.lr, "local-epochs": cfg.client.local_epochs, "batch-size": cfg.client.batch_size}
                ),
                evaluate_fn=centralized_evaluate,
            )
        finally:
            writer.close()
        torch.save(result.arrays.to_torch_state_dict(), Path(run_dir) / "model.pt")

    return app
