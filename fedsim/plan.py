"""The run plan: a composed config resolved and checked once, before any engine starts.

``build_plan`` turns the config into the objects a run needs: the checked run-wide
settings, the description of the federation's data, the model factory, the clients'
optimizer and learning-rate schedule, the privacy mechanism (its noise settled), the
attack (checked against the data), the configured strategy, the callbacks and the engine.
Every option is checked against its target's signature and by its target; nothing is
checked or built again later. The ServerApp and ClientApp are built from the plan;
what crosses to Ray actors and worker processes is the small, picklable
``FederationSpec`` and ``ModelFactory``.
"""

import logging
from dataclasses import dataclass, field

import torch
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedProx, QFedAvg, Strategy
from omegaconf import DictConfig

from fedsim.apps import build_client_app
from fedsim.attacks import Attack
from fedsim.attacks.poisoning import ATTACK_SUCCESS_METRIC
from fedsim.callbacks.base import Callback, History
from fedsim.client_half import CLIENT_HALF_KEY, SEED_KEY, client_half_class, client_half_path
from fedsim.config import GROUPS, CheckpointConfig, ClientConfig, Config, ConfigError, FaultsConfig
from fedsim.config.options import check_option, settings_of, target_of
from fedsim.data import Federation
from fedsim.data.spec import FederationSpec
from fedsim.devices import on_device, resolve_device
from fedsim.instantiate import build
from fedsim.lr_schedules import LearningRateSchedule
from fedsim.models.building import ModelFactory
from fedsim.optimizers import ClientOptimizer
from fedsim.privacy.mechanism import PrivacyMechanism
from fedsim.resident import load_weights
from fedsim.sampling import SeededSampling
from fedsim.settings import RunSettings
from fedsim.stragglers import Stragglers
from fedsim.training import TrainingRecipe, evaluate

# Parameters fedsim passes at run time; a config must not set them.
RUNTIME = {
    "model": ("input_shape", "num_classes"),
    "lr_schedule": ("lr", "num_rounds"),
    "strategy": (
        "fraction_train", "fraction_evaluate", "min_train_nodes", "min_evaluate_nodes", "min_available_nodes",
        "arrayrecord_key", "configrecord_key", "weighted_by_key", "num_clients", "clients_per_round", "seed",
    ),
}
# fedsim draws each round's clients itself (SeededSampling) and shows the strategy only
# those, so the strategy takes every node it is shown; its messages use the record names
# fedsim's ClientApp reads. Metrics are averaged over examples (every reply reports
# num-examples); how clients' models are averaged is strategy.weighting.
STRATEGY_RUNTIME = dict(
    fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=1, min_evaluate_nodes=1, min_available_nodes=1,
    arrayrecord_key="arrays", configrecord_key="config", weighted_by_key="num-examples",
)


@dataclass
class RunPlan:
    """Everything a run needs, built once from its config (see ``build_plan``).

    A plan is for one run: its strategy and callbacks keep the run's state.
    """

    config: DictConfig
    choices: dict
    settings: RunSettings
    federation_spec: FederationSpec
    federation: Federation
    model_factory: ModelFactory
    model: torch.nn.Module
    optimizer: ClientOptimizer
    lr_schedule: LearningRateSchedule
    privacy: PrivacyMechanism
    attack: Attack
    strategy: Strategy
    callbacks: list[Callback]
    engine: object
    device: torch.device
    client_device: str
    history: History = field(default_factory=History)

    def __post_init__(self) -> None:
        self.initial_arrays = ArrayRecord(self.model.state_dict())
        self.model.to(self.device)
        data = self.federation.data
        self._test = on_device(self.federation.test_tensors(), self.device)
        train_metrics = self.settings.centralized_train_metrics
        self._train = on_device(data.to_tensors(data.train), self.device) if train_metrics else None
        self._triggered = self.attack.triggered_test_set(*self._test)

    def recipe(self, server_round: int) -> TrainingRecipe:
        """How clients train in ``server_round``: the schedule's learning rate (stragglers get fewer epochs)."""
        client = self.settings.client
        return TrainingRecipe(
            epochs=client.local_epochs,
            batch_size=client.batch_size,
            lr=self.lr_schedule.lr_at(server_round),
            optimizer=self.optimizer,
        )

    def _common_config(self) -> dict:
        return {SEED_KEY: self.settings.seed, CLIENT_HALF_KEY: client_half_path(self.strategy)}

    def train_config(self, server_round: int) -> ConfigRecord:
        """What the training messages of ``server_round`` carry: recipe, privacy settings, seed, client half."""
        recipe = self.recipe(server_round)
        return ConfigRecord(recipe.to_config() | self.privacy.train_config() | self._common_config())

    def evaluate_config(self) -> ConfigRecord:
        """What every federated-evaluation message carries: the seed and the client half."""
        return ConfigRecord(self._common_config())

    def strategy_stack(self, node_partitions: dict[int, int]) -> Strategy:
        """The strategy inside the privacy mechanism's wrappers, seeded sampling, stragglers, the attack and faults."""
        settings = self.settings
        strategy = self.privacy.wrap(self.strategy, settings, node_partitions)
        strategy = SeededSampling(
            strategy, node_partitions, settings.clients_per_round, settings.eval_clients_per_round, settings.seed
        )
        strategy = Stragglers(strategy, node_partitions, settings.stragglers, settings.drop_stragglers, settings.seed)
        strategy = self.attack.wrap(strategy, node_partitions, settings.seed)
        return settings.faults.wrap(strategy, node_partitions, settings.seed)

    def evaluate_centrally(self, server_round: int, arrays: ArrayRecord) -> MetricRecord:
        """The global model's metrics on the held-out test split (and the training split, if asked)."""
        load_weights(self.model, arrays)
        metrics = evaluate(self.model, *self._test)
        if self._train is not None:
            metrics |= {f"train_{name}": value for name, value in evaluate(self.model, *self._train).items()}
        if self._triggered is not None:
            metrics[ATTACK_SUCCESS_METRIC] = evaluate(self.model, *self._triggered)["accuracy"]
        return MetricRecord(metrics)

    def client_app(self) -> ClientApp:
        return build_client_app(self.federation_spec, self.model_factory, self.client_device)


def check_options(cfg: DictConfig) -> RunSettings:
    """The checked run-wide settings of ``cfg``, after checking every option against its target's signature."""
    _check_known("", cfg, Config)
    _check_known("client.", cfg.client, ClientConfig)
    _check_known("checkpoint.", cfg.checkpoint, CheckpointConfig)
    _check_known("faults.", cfg.faults, FaultsConfig)
    settings = RunSettings.from_config(cfg)
    for group in GROUPS:
        if group == "callbacks":
            for name, node in (cfg.callbacks or {}).items():
                check_option(f"callbacks.{name}", node)
        else:
            check_option(group, cfg[group], RUNTIME.get(group, ()))
    return settings


def _check_known(prefix: str, node: DictConfig, schema: type) -> None:
    """Refuse a key the top-level schema does not know (``+client.momentum=0.9`` would be ignored)."""
    known = set(schema.__dataclass_fields__)
    for key in node:
        if key not in known:
            raise ConfigError(
                f"{prefix}{key} is not a fedsim setting; the {prefix.rstrip('.') or 'top-level'} settings are: "
                f"{', '.join(sorted(known - set(GROUPS)))}."
            )


def load_federation(cfg: DictConfig) -> Federation:
    """The clients' data ``cfg`` describes, loaded once per process (the dataset and partitioner check their settings)."""
    return FederationSpec.from_config(cfg).load()


def build_plan(cfg: DictConfig, choices: dict | None = None) -> RunPlan:
    """Check every setting of ``cfg`` and build what the run needs; ConfigError (one sentence) on the first mistake."""
    logging.getLogger("flwr").setLevel(logging.INFO if cfg.verbose else logging.WARNING)
    settings = check_options(cfg)
    engine = build(cfg.engine)  # first: its checks (a Ray address that does not answer) need no data
    device = resolve_device(settings.device)
    client_device = engine.client_device(device)
    federation_spec = FederationSpec.from_config(cfg)
    federation = federation_spec.load()
    data = federation.data
    model_factory = ModelFactory.from_config(cfg.model, data.input_shape, data.num_classes, settings.seed)
    model = model_factory.build_checked(data.input_dtype)
    optimizer = build(cfg.optimizer)
    lr_schedule = build(cfg.lr_schedule, lr=settings.client.lr, num_rounds=settings.num_rounds)
    strategy = build_strategy(cfg.strategy, settings)
    client_half_class(client_half_path(strategy)).check_optimizer(optimizer)
    privacy = build(cfg.privacy)
    privacy.check_strategy(strategy)
    privacy.prepare(settings, federation, model)
    attack = build(cfg.attack)
    attack.prepare(settings, federation, strategy)
    callbacks = [build(node) for node in (cfg.callbacks or {}).values()]
    return RunPlan(
        config=cfg,
        choices=dict(choices or {}),
        settings=settings,
        federation_spec=federation_spec,
        federation=federation,
        model_factory=model_factory,
        model=model,
        optimizer=optimizer,
        lr_schedule=lr_schedule,
        privacy=privacy,
        attack=attack,
        strategy=strategy,
        callbacks=callbacks,
        engine=engine,
        device=device,
        client_device=client_device,
    )


def build_strategy(strategy_cfg: DictConfig, settings: RunSettings) -> Strategy:
    """The configured strategy, taking every node it is shown, given the federation facts its signature asks for."""
    accepted, _ = settings_of(target_of("strategy", strategy_cfg))
    facts = {"num_clients": settings.num_clients, "clients_per_round": settings.clients_per_round, "seed": settings.seed}
    strategy = build(strategy_cfg, **STRATEGY_RUNTIME, **{key: value for key, value in facts.items() if key in accepted})
    if isinstance(strategy, (FedProx, QFedAvg)) and not hasattr(type(strategy), "client_half"):
        # Flower's classes send their clients settings that plain local training would ignore.
        name = type(strategy).__name__
        raise ConfigError(
            f"strategy._target_={strategy_cfg._target_} has no client half, so clients would ignore its settings; "
            f"use strategies.{name.lower()}.{name} (strategy={name.lower()})."
        )
    return strategy

