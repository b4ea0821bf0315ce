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

from fedsim.client_half import ClientHalf, client_half_for
from fedsim.data import Federation, build_partitioner
from fedsim.instantiate import build
from fedsim.models import build_model
from fedsim.privacy import plan_privacy
from fedsim.privacy.central import CLIPPED_METRIC, clip_update, clipping_norm_of
from fedsim.recording import RoundRecorder
from fedsim.resident import load_weights, resident_record
from fedsim.results import MetricsWriter
from fedsim.sampling import SeededSampling
from fedsim.stragglers import Stragglers
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

    Each message loads its weights into the shared model, so a process builds the
    model once, whatever number of clients it serves; ``client_half`` is the class of
    the strategy's client half, instantiated for each message.
    """

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.data_key = federation_key(cfg)
        self._model: torch.nn.Module | None = None
        self.client_half = client_half_for(cfg.strategy._target_)

    @property
    def federation(self) -> Federation:
        return _load_federation(self.data_key)

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            data = self.federation.data
            self._model = build_model(self.cfg.model, data.input_shape, data.num_classes, self.cfg.seed)
        return self._model


def build_client_app(cfg: DictConfig) -> ClientApp:
    """A ClientApp whose nodes train and evaluate on their partition of ``cfg``'s dataset."""
    app = ClientApp()
    workspace = ClientWorkspace(cfg)
    # read once: a DictConfig lookup costs more than a small tensor operation
    run_seed, local_dp = int(cfg.seed), cfg.privacy.mechanism == "local_dp"

    def client_half(message: Message, context: Context) -> ClientHalf:
        partition_id = int(context.node_config[PARTITION_ID_KEY])
        seed = client_seed(run_seed, int(message.content["config"]["server-round"]), partition_id)
        data = workspace.federation.client(partition_id)
        return workspace.client_half(message, context.state, data, seed)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        half = client_half(message, context)
        model = workspace.model
        half.load(model)
        metrics = half.start(model)
        training = dict(
            epochs=int(half.config["local-epochs"]),
            batch_size=int(half.config["batch-size"]),
            lr=float(half.config["lr"]),
            seed=half.seed,
            correct_gradients=half.correct_gradients,
            augment=workspace.federation.data.augmentation,
        )
        if local_dp:
            from fedsim.privacy.local import NOISE_KEY, train_privately

            metrics |= train_privately(
                model,
                half.data.train_x,
                half.data.train_y,
                **training,
                state=context.state,
                noise_multiplier=float(half.config[NOISE_KEY]),
                max_grad_norm=cfg.privacy.max_grad_norm,
                delta=cfg.privacy.target_delta,
                accountant=cfg.privacy.accountant,
                secure_mode=cfg.privacy.secure_mode,
            )
        else:
            metrics |= train_locally(model, half.data.train_x, half.data.train_y, **training)
        metrics["num-examples"] = len(half.data.train_y)
        metrics["local-epochs"] = float(half.config["local-epochs"])
        extra = half.finish(model, metrics)
        arrays = resident_record(model.state_dict())
        if (clipping_norm := clipping_norm_of(half.config)) is not None:  # central DP clipped by the client
            arrays, clipped = clip_update(message.content["arrays"], arrays, clipping_norm)
            metrics[CLIPPED_METRIC] = int(clipped)
        content = RecordDict({"arrays": arrays, **extra, "metrics": MetricRecord(metrics)})
        return Message(content, reply_to=message)

    @app.evaluate()
    def evaluate_locally(message: Message, context: Context) -> Message:
        half = client_half(message, context)
        model = workspace.model
        half.load(model)
        metrics = half.evaluate(model)
        metrics["num-examples"] = len(half.data.eval_y)
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
        train_x, train_y = data.to_tensors(data.train) if cfg.centralized_train_metrics else (None, None)

        def centralized_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
            load_weights(model, arrays)
            metrics = evaluate(model, test_x, test_y)
            if train_x is not None:
                metrics |= {f"train_{name}": value for name, value in evaluate(model, train_x, train_y).items()}
            return MetricRecord(metrics)

        privacy = plan_privacy(cfg, federation, model)  # before any training: its checks can refuse the run
        node_partitions = discover_partitions(grid, cfg.num_clients)
        strategy = SeededSampling(
            privacy.wrap(build_strategy(cfg)), node_partitions, cfg.clients_per_round, cfg.eval_clients_per_round,
            cfg.seed,
        )
        strategy = Stragglers(strategy, node_partitions, cfg.stragglers, cfg.drop_stragglers, cfg.seed)
        writer = MetricsWriter(run_dir)
        try:
            recorder = RoundRecorder(strategy, node_partitions, writer, on_round_end)
            result = recorder.start(
                grid,
                ArrayRecord(model.state_dict()),
                num_rounds=cfg.num_rounds,
                train_config=ConfigRecord(
                    {
                        "lr": cfg.client.lr,
                        "local-epochs": cfg.client.local_epochs,
                        "batch-size": cfg.client.batch_size,
                        **privacy.train_config,
                    }
                ),
                evaluate_fn=centralized_evaluate,
            )
        finally:
            writer.close()
        torch.save(result.arrays.to_torch_state_dict(), Path(run_dir) / "model.pt")

    return app
