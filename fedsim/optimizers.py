"""Client optimizers (the ``optimizer`` config group): checked once, sent in each training message, built with torch.optim.

An option names one of these classes and states its hyperparameters; the learning rate
is ``client.lr`` (or the round's rate under a schedule, ``fedsim.lr_schedules``). The
server sends the class path and the hyperparameters in each training message's config
record, and the client builds a fresh ``torch.optim`` optimizer from them for every
message. With ``keep_state`` the optimizer's state (momentum buffers, Adam's moments and
step count) is kept in the node's ``Context.state`` from one round to the client's next.
"""

import dataclasses
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import torch
from flwr.app import ConfigRecord, RecordDict
from hydra.utils import get_class

from fedsim.config.checks import require
from fedsim.resident import resident_record

OPTIMIZER_KEY = "optimizer"  # the config-record key of the optimizer's class path
OPTIMIZER_STATE_KEY = "optimizer-state"  # the node-state key of a kept optimizer state


def _config_key(field: str) -> str:
    return f"{OPTIMIZER_KEY}-{field.replace('_', '-')}"


def _require_decay(name: str, value: float) -> None:
    require(0 <= value < 1, f"optimizer.{name} must be in [0, 1) (got {value}).")


def _require_weight_decay(value: float) -> None:
    require(
        math.isfinite(value) and value >= 0, f"optimizer.weight_decay must be at least 0 and finite (got {value})."
    )


@dataclass(frozen=True, kw_only=True)
class ClientOptimizer:
    """The base of client optimizers: what every training message carries about the optimizer.

    Subclasses are frozen keyword-only dataclasses whose fields are the hyperparameters
    (the keyword arguments of their ``torch_class`` besides the learning rate), checked in
    ``__post_init__``; their YAML options state every field, with no default in the class.

    Attributes
    ----------
    keep_state : bool
        Keep the optimizer's state in the node's state between the client's rounds
        (false: every round starts with a fresh optimizer, as in most papers).
    """

    keep_state: bool
    torch_class: ClassVar[type[torch.optim.Optimizer]]

    def hyperparameters(self) -> dict:
        """The keyword arguments of ``torch_class`` besides the parameters and the learning rate."""
        fields = [field.name for field in dataclasses.fields(self) if field.name != "keep_state"]
        return {name: getattr(self, name) for name in fields}

    def build(
        self, parameters: Iterable[torch.Tensor], lr: float, state: RecordDict, key: str = OPTIMIZER_STATE_KEY
    ) -> "torch.optim.Optimizer | PlainSGD":
        """The optimizer a client steps with: ``build_torch``'s, unless a subclass has a cheaper one that steps the same."""
        return self.build_torch(parameters, lr, state, key)

    def build_torch(
        self, parameters: Iterable[torch.Tensor], lr: float, state: RecordDict, key: str = OPTIMIZER_STATE_KEY
    ) -> torch.optim.Optimizer:
        """A fresh torch optimizer over ``parameters`` at ``lr``; with ``keep_state``, the state kept under ``key``."""
        optimizer = self.torch_class(parameters, lr=lr, **self.hyperparameters())
        if self.keep_state and key in state:
            stored = state[key].to_torch_state_dict()
            kept: dict[int, dict[str, torch.Tensor]] = {}
            for name, tensor in stored.items():
                index, _, entry = name.partition(".")
                kept.setdefault(int(index), {})[entry] = tensor
            # the kept state only: this message's hyperparameters (the round's lr) stay
            optimizer.load_state_dict({"state": kept, "param_groups": optimizer.state_dict()["param_groups"]})
        return optimizer

    def keep(self, optimizer: torch.optim.Optimizer, state: RecordDict, key: str = OPTIMIZER_STATE_KEY) -> None:
        """With ``keep_state``, keep ``optimizer``'s state in the node's state (under ``key``) for the next round."""
        if not self.keep_state:
            return
        tensors = {
            f"{index}.{entry}": value if torch.is_tensor(value) else torch.tensor(value)
            for index, entries in optimizer.state_dict()["state"].items()
            for entry, value in entries.items()
            if value is not None
        }
        state[key] = resident_record(tensors)

    def to_config(self) -> dict[str, str | float | bool | list[float]]:
        """The config-record entries that describe this optimizer."""
        entries: dict[str, str | float | bool | list[float]] = {
            OPTIMIZER_KEY: f"{type(self).__module__}.{type(self).__qualname__}"
        }
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            entries[_config_key(field.name)] = list(value) if isinstance(value, tuple) else value
        return entries

    @staticmethod
    def from_config(config: ConfigRecord) -> "ClientOptimizer":
        """The optimizer a message's config record describes."""
        cls = optimizer_class(str(config[OPTIMIZER_KEY]))
        return cls(**{field.name: config[_config_key(field.name)] for field in dataclasses.fields(cls)})


@functools.cache
def optimizer_class(path: str) -> type[ClientOptimizer]:
    """The optimizer class a message names."""
    return get_class(path)


@dataclass(frozen=True, kw_only=True)
class SGD(ClientOptimizer):
    """Minibatch SGD (``torch.optim.SGD``), with optional momentum, Nesterov momentum and weight decay.

    Attributes
    ----------
    momentum : float
        rho in [0, 1): the buffer b <- rho b + (1 - dampening) g steps instead of g.
    dampening : float
        In [0, 1); 0 with Nesterov momentum.
    nesterov : bool
        Nesterov momentum (needs momentum > 0 and dampening 0).
    weight_decay : float
        L2 penalty added to the gradient as weight_decay * w (at least 0).
    """

    momentum: float
    dampening: float
    nesterov: bool
    weight_decay: float
    torch_class = torch.optim.SGD

    def __post_init__(self) -> None:
        _require_decay("momentum", self.momentum)
        _require_decay("dampening", self.dampening)
        _require_weight_decay(self.weight_decay)
        if self.nesterov:
            require(
                self.momentum > 0,
                f"optimizer.nesterov=true needs optimizer.momentum greater than 0 (got {self.momentum}).",
            )
            require(self.dampening == 0, f"optimizer.nesterov=true needs optimizer.dampening=0 (got {self.dampening}).")

    def build(self, parameters, lr, state, key=OPTIMIZER_STATE_KEY):
        if self.momentum == 0 and self.weight_decay == 0:  # plain SGD: no state, and no torch.optim to build
            return PlainSGD(parameters, lr)
        return self.build_torch(parameters, lr, state, key)


class PlainSGD:
    """w <- w - lr g for every parameter: ``torch.optim.SGD`` without momentum and weight decay, bit for bit.

    Building a ``torch.optim`` optimizer imports ``torch._dynamo`` the first time in a
    process (1.1 s of start-up on fedsim's 2-core machine, longer than a W1 run's rounds),
    so plain SGD, the default, steps by itself; with nothing to keep, its state is empty.
    """

    def __init__(self, parameters: Iterable[torch.Tensor], lr: float) -> None:
        self.parameters = list(parameters)
        self.lr = lr

    @torch.no_grad()
    def step(self) -> None:
        for parameter in self.parameters:
            parameter.add_(parameter.grad, alpha=-self.lr)

    def state_dict(self) -> dict:
        return {"state": {}, "param_groups": []}


@dataclass(frozen=True, kw_only=True)
class Adam(ClientOptimizer):
    """Adam (``torch.optim.Adam``; Kingma and Ba 2015), weight decay added to the gradient as L2.

    Attributes
    ----------
    betas : tuple[float, float]
        The decay rates of the first and second moment estimates, each in [0, 1).
    eps : float
        Added to the denominator (greater than 0).
    weight_decay : float
        L2 penalty (at least 0).
    """

    betas: tuple[float, float]
    eps: float
    weight_decay: float
    torch_class = torch.optim.Adam

    def __post_init__(self) -> None:
        betas = tuple(self.betas)
        require(
            len(betas) == 2 and all(0 <= beta < 1 for beta in betas),
            f"optimizer.betas must be two values in [0, 1) (got {list(betas)}).",
        )
        object.__setattr__(self, "betas", betas)
        require(
            math.isfinite(self.eps) and self.eps > 0,
            f"optimizer.eps must be greater than 0 and finite (got {self.eps}).",
        )
        _require_weight_decay(self.weight_decay)


@dataclass(frozen=True, kw_only=True)
class AdamW(Adam):
    """AdamW (``torch.optim.AdamW``; Loshchilov and Hutter 2019): Adam with weight decay decoupled from the gradient."""

    torch_class = torch.optim.AdamW
