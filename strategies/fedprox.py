"""FedProx: local objectives with a proximal term (Li et al. 2020).

Li, Sahu, Zaheer, Sanjabi, Talwalkar, Smith. "Federated Optimization in Heterogeneous
Networks." MLSys 2020.
"""

from flwr.serverapp import strategy as flower

from fedsim.client_half import ClientHalf
from fedsim.config.checks import require
from strategies.weighting import Weighted, check_weighting


class ProximalClient(ClientHalf):
    """FedProx's client: minimize the local loss + mu/2 ||w - w_global||^2.

    The server sends mu as ``proximal-mu`` in the train config; the proximal term's
    gradient mu (w - w_global) is added to every minibatch gradient before the
    optimizer's step, so momentum and Adam work on the gradient of the local objective,
    as in the paper's definition of the local problem and Flower's niid_bench baseline
    (which adds the term to the loss).
    """

    def start(self, model):
        self.mu = float(self.config["proximal-mu"])
        self.global_parameters = [p.detach().clone() for p in model.parameters() if p.requires_grad]
        return {}

    def correct_gradients(self, parameters, gradients):
        if self.mu == 0:
            return gradients
        return [g + self.mu * (p.detach() - w) for p, g, w in zip(parameters, gradients, self.global_parameters)]


class FedProx(flower.FedProx, Weighted):
    """Flower's FedProx server (FedAvg that sends ``proximal-mu``), with its client half.

    Parameters
    ----------
    proximal_mu : float
        mu, the weight of the proximal term; 0 is FedAvg.
    weighting : str
        ``examples`` or ``uniform``: the clients' weights in the average.
    **fedavg_args
        Passed to Flower's ``FedProx``.
    """

    client_half = ProximalClient

    def __init__(self, *, proximal_mu: float, weighting: str, **fedavg_args) -> None:
        require(proximal_mu >= 0, f"strategy.proximal_mu must be at least 0 (got {proximal_mu}).")
        check_weighting(weighting)
        super().__init__(proximal_mu=proximal_mu, **fedavg_args)
        self.weighting = weighting
