"""Server optimizers: Flower's FedAvgM (Hsu et al. 2019), FedAdagrad, FedAdam and FedYogi (Reddi et al. 2021), with their arguments checked.

Each steps from the average of the clients' models, weighted by ``weighting``
(``examples`` or ``uniform``; see ``strategies.weighting``).

Hsu, Qi, Brown. "Measuring the Effects of Non-Identical Data Distribution for Federated
Visual Classification." 2019. Reddi, Charles, Zaheer, Garrett, Rush, Konecny, Kumar,
McMahan. "Adaptive Federated Optimization." ICLR 2021.
"""

from flwr.serverapp import strategy as flower

from fedsim.config.checks import require
from strategies.weighting import Weighted, check_weighting


def _require_positive(**values: float) -> None:
    for name, value in values.items():
        require(value > 0, f"strategy.{name} must be greater than 0 (got {value}).")


def _require_decay(**values: float) -> None:
    for name, value in values.items():
        require(0 <= value < 1, f"strategy.{name} must be in [0, 1) (got {value}).")


class FedAvgM(flower.FedAvgM, Weighted):
    """FedAvg with server momentum: server_learning_rate > 0, server_momentum in [0, 1)."""

    def __init__(
        self, *, server_learning_rate: float, server_momentum: float, weighting: str, **fedavg_args
    ) -> None:
        _require_positive(server_learning_rate=server_learning_rate)
        _require_decay(server_momentum=server_momentum)
        check_weighting(weighting)
        super().__init__(server_learning_rate=server_learning_rate, server_momentum=server_momentum, **fedavg_args)
        self.weighting = weighting


class FedAdagrad(flower.FedAdagrad, Weighted):
    """FedAdagrad: server step eta > 0, eta_l > 0, adaptivity tau > 0."""

    def __init__(self, *, eta: float, eta_l: float, tau: float, weighting: str, **fedavg_args) -> None:
        _require_positive(eta=eta, eta_l=eta_l, tau=tau)
        check_weighting(weighting)
        super().__init__(eta=eta, eta_l=eta_l, tau=tau, **fedavg_args)
        self.weighting = weighting


class FedAdam(flower.FedAdam, Weighted):
    """FedAdam: eta, eta_l, tau > 0; moment decays beta_1, beta_2 in [0, 1)."""

    def __init__(
        self, *, eta: float, eta_l: float, beta_1: float, beta_2: float, tau: float, weighting: str, **fedavg_args
    ) -> None:
        _require_positive(eta=eta, eta_l=eta_l, tau=tau)
        _require_decay(beta_1=beta_1, beta_2=beta_2)
        check_weighting(weighting)
        super().__init__(eta=eta, eta_l=eta_l, beta_1=beta_1, beta_2=beta_2, tau=tau, **fedavg_args)
        self.weighting = weighting


class FedYogi(flower.FedYogi, Weighted):
    """FedYogi: eta, eta_l, tau > 0; moment decays beta_1, beta_2 in [0, 1)."""

    def __init__(
        self, *, eta: float, eta_l: float, beta_1: float, beta_2: float, tau: float, weighting: str, **fedavg_args
    ) -> None:
        _require_positive(eta=eta, eta_l=eta_l, tau=tau)
        _require_decay(beta_1=beta_1, beta_2=beta_2)
        check_weighting(weighting)
        super().__init__(eta=eta, eta_l=eta_l, beta_1=beta_1, beta_2=beta_2, tau=tau, **fedavg_args)
        self.weighting = weighting
