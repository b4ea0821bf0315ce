"""q-FedAvg: fair resource allocation (Li et al. 2020, q-FFL).

Li, Sanjabi, Beirami, Smith. "Fair Resource Allocation in Federated Learning." ICLR 2020.
"""

from flwr.serverapp import strategy as flower

from fedsim.client_half import ClientHalf
from fedsim.config.checks import require
from fedsim.training import evaluate


class FairLossClient(ClientHalf):
    """q-FedAvg's client: report the global model's loss on the local training data,
    measured before training, as ``train_loss``."""

    def start(self, model):
        return {"train_loss": evaluate(model, self.data.train_x, self.data.train_y)["loss"]}


class QFedAvg(flower.QFedAvg):
    """Flower's q-FedAvg server, with its client half.

    Parameters
    ----------
    q : float
        The fairness exponent; 0 is FedAvg's objective.
    client_learning_rate : float
        The clients' learning rate L = 1 / lr the server's step assumes.
    **fedavg_args
        Passed to Flower's ``QFedAvg``.
    """

    client_half = FairLossClient

    def __init__(self, *, q: float, client_learning_rate: float, **fedavg_args) -> None:
        require(q >= 0, f"strategy.q must be at least 0 (got {q}).")
        require(
            client_learning_rate > 0,
            f"strategy.client_learning_rate must be greater than 0 (got {client_learning_rate}).",
        )
        super().__init__(client_learning_rate=client_learning_rate, q=q, **fedavg_args)
