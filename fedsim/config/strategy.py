"""Schemas and value checks of the strategy options."""

from dataclasses import dataclass

from omegaconf import MISSING, DictConfig

from fedsim.config.checks import require


@dataclass
class FedAvgConfig:
    _target_: str = "flwr.serverapp.strategy.FedAvg"


@dataclass
class FedAvgMConfig:
    _target_: str = "flwr.serverapp.strategy.FedAvgM"
    server_learning_rate: float = 1.0
    server_momentum: float = 0.9


@dataclass
class FedOptConfig:
    _target_: str = MISSING
    eta: float = 0.1
    eta_l: float = 0.1
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 1e-3


@dataclass
class FedAdagradConfig:
    _target_: str = "flwr.serverapp.strategy.FedAdagrad"
    eta: float = 0.1
    eta_l: float = 0.1
    tau: float = 1e-3


@dataclass
class FedMedianConfig:
    _target_: str = "flwr.serverapp.strategy.FedMedian"


@dataclass
class FedProxConfig:
    _target_: str = "flwr.serverapp.strategy.FedProx"
    proximal_mu: float = 0.01


@dataclass
class FedTrimmedAvgConfig:
    _target_: str = "flwr.serverapp.strategy.FedTrimmedAvg"
    beta: float = 0.2


@dataclass
class KrumConfig:
    _target_: str = "flwr.serverapp.strategy.Krum"
    num_malicious_nodes: int = 0


@dataclass
class MultiKrumConfig:
    _target_: str = "flwr.serverapp.strategy.MultiKrum"
    num_malicious_nodes: int = 0
    num_nodes_to_select: int = 1


@dataclass
class BulyanConfig:
    _target_: str = "flwr.serverapp.strategy.Bulyan"
    num_malicious_nodes: int = 0


@dataclass
class QFedAvgConfig:
    _target_: str = "flwr.serverapp.strategy.QFedAvg"
    q: float = 0.1
    client_learning_rate: float = 0.05


@dataclass
class ScaffoldConfig:
    _target_: str = "strategies.scaffold.Scaffold"
    server_learning_rate: float = 1.0
    num_clients: int = MISSING


@dataclass
class FedNovaConfig:
    _target_: str = "strategies.fednova.FedNova"


@dataclass
class FedDynConfig:
    _target_: str = "strategies.feddyn.FedDyn"
    alpha: float = 0.01
    num_clients: int = MISSING


@dataclass
class FedBNConfig:
    _target_: str = "strategies.fedbn.FedBN"


@dataclass
class DittoConfig:
    _target_: str = "strategies.ditto.Ditto"
    proximal_lambda: float = 0.1


SCHEMAS: dict[str, type] = {
    "fedavg": FedAvgConfig,
    "fedavgm": FedAvgMConfig,
    "fedopt": FedOptConfig,
    "fedadagrad": FedAdagradConfig,
    "fedmedian": FedMedianConfig,
    "fedprox": FedProxConfig,
    "fedtrimmedavg": FedTrimmedAvgConfig,
    "krum": KrumConfig,
    "multikrum": MultiKrumConfig,
    "bulyan": BulyanConfig,
    "qfedavg": QFedAvgConfig,
    "scaffold": ScaffoldConfig,
    "fednova": FedNovaConfig,
    "feddyn": FedDynConfig,
    "fedbn": FedBNConfig,
    "ditto": DittoConfig,
}


def validate(strategy: DictConfig, cfg: DictConfig) -> None:
    """Check the values of the strategy option."""
    for key in ("eta", "eta_l", "server_learning_rate"):
        if key in strategy:
            require(strategy[key] > 0, f"strategy.{key} must be greater than 0 (got {strategy[key]}).")
    for key in ("beta_1", "beta_2", "server_momentum"):
        if key in strategy:
            require(
                0 <= strategy[key] < 1,
                f"strategy.{key} must be in [0, 1) (got {strategy[key]}).",
            )
    if "tau" in strategy:
        require(strategy.tau > 0, f"strategy.tau must be greater than 0 (got {strategy.tau}).")
    if "proximal_mu" in strategy:
        require(strategy.proximal_mu >= 0, f"strategy.proximal_mu must be at least 0 (got {strategy.proximal_mu}).")
    if "beta" in strategy:
        require(0 <= strategy.beta < 0.5, f"strategy.beta (the trimmed fraction) must be in [0, 0.5) (got {strategy.beta}).")
    if "q" in strategy:
        require(strategy.q >= 0, f"strategy.q must be at least 0 (got {strategy.q}).")
    if "client_learning_rate" in strategy:
        require(
            strategy.client_learning_rate > 0,
            f"strategy.client_learning_rate must be greater than 0 (got {strategy.client_learning_rate}).",
        )
    if "num_malicious_nodes" in strategy:
        _validate_byzantine(strategy, cfg.clients_per_round)
    if "alpha" in strategy:
        require(strategy.alpha > 0, f"strategy.alpha must be greater than 0 (got {strategy.alpha}).")
    if "proximal_lambda" in strategy:
        require(
            strategy.proximal_lambda >= 0,
            f"strategy.proximal_lambda must be at least 0 (got {strategy.proximal_lambda}).",
        )
    if "num_clients" in strategy:
        require(
            strategy.num_clients == cfg.num_clients,
            f"strategy.num_clients must equal num_clients={cfg.num_clients} (got {strategy.num_clients}); "
            "leave it at ${num_clients}.",
        )


# Clients per round each robust rule needs to tolerate f Byzantine clients.
_BYZANTINE_MINIMUM = {
    "Krum": (lambda f: 2 * f + 3, "2 * num_malicious_nodes + 3 (Blanchard et al. 2017)"),
    "MultiKrum": (lambda f: 2 * f + 3, "2 * num_malicious_nodes + 3 (Blanchard et al. 2017)"),
    "Bulyan": (lambda f: 4 * f + 3, "4 * num_malicious_nodes + 3 (El Mhamdi et al. 2018)"),
}


def _validate_byzantine(strategy: DictConfig, clients_per_round: int) -> None:
    f = strategy.num_malicious_nodes
    require(f >= 0, f"strategy.num_malicious_nodes must be at least 0 (got {f}).")
    rule = strategy._target_.rsplit(".", 1)[-1]
    if rule in _BYZANTINE_MINIMUM:
        minimum, formula = _BYZANTINE_MINIMUM[rule]
        require(
            clients_per_round >= minimum(f),
            f"strategy.num_malicious_nodes={f} needs clients_per_round >= {formula} = {minimum(f)} "
            f"(got {clients_per_round}).",
        )
    if "num_nodes_to_select" in strategy:
        select = strategy.num_nodes_to_select
        require(
            1 <= select <= clients_per_round - f,
            f"strategy.num_nodes_to_select must be between 1 and clients_per_round - num_malicious_nodes = "
            f"{clients_per_round - f} (got {select}).",
        )
