"""Client halves of algorithms: what a client does around fedsim's local training loop.

An algorithm such as FedProx or SCAFFOLD changes both the server's aggregation (a
Flower ``Strategy``) and the client's local objective. The client half reads what the
server sent in the Message, corrects the local gradients, keeps state that must outlive
a round in the node's ``Context.state`` (never in globals, so it works on every engine),
and adds records to the reply.

A strategy names its client half with a ``client_half`` class attribute; Flower's own
strategies that need one are mapped in ``_flower_client_halves``.
"""

from collections.abc import Sequence

import torch
from flwr.app import ArrayRecord, Message, RecordDict
from hydra.utils import get_class
from torch import nn

from fedsim.data import ClientData
from fedsim.resident import load_weights
from fedsim.training import evaluate


class ClientHalf:
    """Plain local training (FedAvg's client); the base of every client half.

    One instance handles one message. For a training message the client calls
    ``load`` -> ``start`` -> ``correct_gradients`` at every SGD step -> ``finish``;
    for an evaluation message ``load`` -> ``evaluate``.

    Parameters
    ----------
    message : Message
        The server's instruction: ``arrays`` (global weights), ``config`` and whatever
        else the server half sends.
    state : RecordDict
        The node's ``Context.state``, kept between rounds.
    data : ClientData
        The client's local training and evaluation tensors.
    seed : int
        Seed of this client's randomness in this round.
    """

    def __init__(self, message: Message, state: RecordDict, data: ClientData, seed: int) -> None:
        self.message = message
        self.state = state
        self.data = data
        self.seed = seed

    @property
    def config(self):
        return self.message.content["config"]

    def load(self, model: nn.Module) -> None:
        """Put the global weights of the message into ``model``."""
        load_weights(model, self.message.content["arrays"])

    def start(self, model: nn.Module) -> dict[str, float]:
        """Prepare local training; return metrics to report (none by default)."""
        return {}

    def correct_gradients(
        self, parameters: Sequence[torch.Tensor], gradients: Sequence[torch.Tensor]
    ) -> Sequence[torch.Tensor]:
        """Adjust a minibatch's gradients before the SGD step (unchanged by default)."""
        return gradients

    def finish(self, model: nn.Module, metrics: dict[str, float]) -> dict[str, ArrayRecord]:
        """After local training: update state, return extra ArrayRecords for the reply."""
        return {}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Metrics of ``model`` on the client's evaluation data."""
        return evaluate(model, self.data.eval_x, self.data.eval_y)


class ProximalClient(ClientHalf):
    """FedProx's client (Li et al. 2020): minimize the local loss + mu/2 ||w - w_global||^2.

    The server sends mu as ``proximal-mu`` in the train config; the proximal term's
    gradient mu (w - w_global) is added to every minibatch gradient.
    """

    def start(self, model):
        self.mu = float(self.config["proximal-mu"])
        self.global_parameters = [p.detach().clone() for p in model.parameters() if p.requires_grad]
        return {}

    def correct_gradients(self, parameters, gradients):
        if self.mu == 0:
            return gradients
        return [g + self.mu * (p.detach() - w) for p, g, w in zip(parameters, gradients, self.global_parameters)]


class FairLossClient(ClientHalf):
    """q-FedAvg's client (Li et al. 2020, q-FFL): report the global model's loss on the
    local training data, measured before training, as ``train_loss``."""

    def start(self, model):
        return {"train_loss": evaluate(model, self.data.train_x, self.data.train_y)["loss"]}


def _flower_client_halves() -> dict[type, type[ClientHalf]]:
    from flwr.serverapp.strategy import FedProx, QFedAvg

    return {FedProx: ProximalClient, QFedAvg: FairLossClient}


def client_half_for(strategy_target: str) -> type[ClientHalf]:
    """The client half class the strategy at ``strategy_target`` (a class path) needs."""
    strategy_class = get_class(strategy_target)
    half = getattr(strategy_class, "client_half", None)
    if half is None:
        half = next(
            (h for cls, h in _flower_client_halves().items() if issubclass(strategy_class, cls)), ClientHalf
        )
    return half
