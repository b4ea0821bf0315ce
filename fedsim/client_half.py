"""Client halves of algorithms: what a client does around fedsim's one local training function.

An algorithm such as FedProx or SCAFFOLD changes both the server's aggregation (a
Flower ``Strategy``) and the client's local objective. The client half reads what the
server sent in the Message, corrects the local gradients before each optimizer step or
the weights after it, keeps state that must outlive a round in the node's
``Context.state`` (never in globals, so it works on every engine), and adds records to
the reply. Every half trains with the optimizer the message names (``fedsim.optimizers``);
a half that works only with some optimizers says so in ``check_optimizer``, which the
run plan calls before training.

A strategy names its client half with a ``client_half`` class attribute (plain
training when it has none); the server sends the half's class path in every message
(``CLIENT_HALF_KEY``), so the ClientApp needs nothing from the strategy's config.
"""

import functools
from collections.abc import Sequence

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from hydra.utils import get_class
from torch import nn

from fedsim.data import ClientData
from fedsim.optimizers import OPTIMIZER_STATE_KEY, ClientOptimizer
from fedsim.resident import load_weights
from fedsim.training import Augmentation, GradientCorrection, TrainingRecipe, WeightCorrection, evaluate, train

# Keys every message's config record carries besides the training recipe.
CLIENT_HALF_KEY = "client-half"  # the class path of the strategy's client half
SEED_KEY = "seed"  # the run's seed, from which each client's seed is drawn


class ClientHalf:
    """Plain local training (FedAvg's client); the base of every client half.

    One instance handles one message. For a training message the client calls
    ``load`` -> ``start`` -> ``train`` (which calls ``correct_gradients`` before and
    ``correct_weights`` after every optimizer step) -> ``finish``; for an evaluation
    message ``load`` -> ``evaluate``.

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
    augment : Augmentation | None
        The dataset's training augmentation, drawn anew for every minibatch.
    """

    def __init__(
        self, message: Message, state: RecordDict, data: ClientData, seed: int, augment: Augmentation | None = None
    ) -> None:
        self.message = message
        self.state = state
        self.data = data
        self.seed = seed
        self.augment = augment

    @classmethod
    def check_optimizer(cls, optimizer: ClientOptimizer) -> None:
        """Raise ConfigError (one sentence) if this half cannot train with ``optimizer``; every one by default."""

    @property
    def config(self) -> ConfigRecord:
        return self.message.content["config"]

    @property
    def recipe(self) -> TrainingRecipe:
        """How the message asks the client to train."""
        return TrainingRecipe.from_config(self.config)

    def load(self, model: nn.Module) -> None:
        """Put the global weights of the message into ``model``."""
        load_weights(model, self.message.content["arrays"])

    def start(self, model: nn.Module) -> dict[str, float]:
        """Prepare local training; return metrics to report (none by default)."""
        return {}

    def train(
        self,
        model: nn.Module,
        correct_gradients: GradientCorrection | None,
        correct_weights: WeightCorrection | None = None,
        optimizer_state_key: str = OPTIMIZER_STATE_KEY,
    ) -> dict[str, float]:
        """Train ``model`` on the local training data as the message's recipe says.

        Every model a client half trains goes through here, so the optimizer, local
        DP-SGD (and its accountant in the node's state) and augmentation apply to all
        of them. A half that trains several models gives each its own
        ``optimizer_state_key``, under which ``optimizer.keep_state`` keeps its state.
        """
        return train(
            model,
            self.data.train_x,
            self.data.train_y,
            self.recipe,
            seed=self.seed,
            state=self.state,
            correct_gradients=correct_gradients,
            correct_weights=correct_weights,
            augment=self.augment,
            optimizer_state_key=optimizer_state_key,
        )

    def correct_gradients(
        self, parameters: Sequence[torch.Tensor], gradients: Sequence[torch.Tensor]
    ) -> Sequence[torch.Tensor]:
        """Adjust a minibatch's gradients before the optimizer's step (unchanged by default).

        The optimizer (momentum, Adam's moments) sees the corrected gradients: the place
        for terms of the local objective.
        """
        return gradients

    def correct_weights(self, parameters: Sequence[torch.Tensor], lr: float) -> None:
        """Move the weights in place after each optimizer step at learning rate ``lr`` (nothing by default)."""

    def finish(self, model: nn.Module, metrics: dict[str, float]) -> dict[str, ArrayRecord]:
        """After local training: update state, return extra ArrayRecords for the reply."""
        return {}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Metrics of ``model`` on the client's evaluation data."""
        return evaluate(model, self.data.eval_x, self.data.eval_y)


def client_half_path(strategy: object) -> str:
    """The class path of the client half ``strategy`` (a server half) needs, for the messages."""
    half = getattr(type(strategy), "client_half", ClientHalf)
    return f"{half.__module__}.{half.__qualname__}"


@functools.cache
def client_half_class(path: str) -> type[ClientHalf]:
    """The client half class a message names."""
    return get_class(path)
