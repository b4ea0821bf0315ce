"""Local training and evaluation loops run by every client and by the server's evaluation."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from flwr.app import ConfigRecord, RecordDict
from torch import nn
from torch.nn import functional as F

from fedsim.devices import rng_devices, seed_device
from fedsim.optimizers import OPTIMIZER_STATE_KEY, ClientOptimizer

if TYPE_CHECKING:
    from fedsim.privacy.local import DPSGD

GradientCorrection = Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], Sequence[torch.Tensor]]
WeightCorrection = Callable[[Sequence[torch.Tensor], float], None]
Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

LR_KEY, EPOCHS_KEY, BATCH_SIZE_KEY = "lr", "local-epochs", "batch-size"


@dataclass(frozen=True)
class TrainingRecipe:
    """How a client trains in one round, as the server's message says (its config record).

    Attributes
    ----------
    epochs, batch_size, lr : int, int, float
        Local epochs, minibatch size and the round's learning rate.
    optimizer : ClientOptimizer
        The optimizer and its hyperparameters (``fedsim.optimizers``).
    dp : DPSGD | None
        Local differential privacy (Opacus DP-SGD) settings, or None for non-private training.
    """

    epochs: int
    batch_size: int
    lr: float
    optimizer: ClientOptimizer
    dp: "DPSGD | None" = None

    @classmethod
    def from_config(cls, config: ConfigRecord) -> "TrainingRecipe":
        from fedsim.privacy.local import DPSGD

        return cls(
            epochs=int(config[EPOCHS_KEY]),
            batch_size=int(config[BATCH_SIZE_KEY]),
            lr=float(config[LR_KEY]),
            optimizer=ClientOptimizer.from_config(config),
            dp=DPSGD.from_config(config),
        )

    def to_config(self) -> dict[str, int | float | str | bool | list[float]]:
        """The config-record entries that describe this recipe."""
        entries = {LR_KEY: self.lr, EPOCHS_KEY: self.epochs, BATCH_SIZE_KEY: self.batch_size}
        return entries | self.optimizer.to_config() | (self.dp.to_config() if self.dp is not None else {})


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: TrainingRecipe,
    *,
    seed: int,
    state: RecordDict,
    correct_gradients: GradientCorrection | None = None,
    correct_weights: WeightCorrection | None = None,
    augment: Augmentation | None = None,
    optimizer_state_key: str = OPTIMIZER_STATE_KEY,
) -> dict[str, float]:
    """Train ``model`` on (x, y) as ``recipe`` says: minibatch steps of its optimizer, made private under local DP.

    The one training function of every client half (FedAvg's, SCAFFOLD's, Ditto's
    personal model, ...), so that the optimizer, local DP and augmentation reach every
    model a client trains. ``state`` is the node's ``Context.state``: under DP-SGD the
    client's accountant lives there, so every model trained on the client's data is
    accounted; with ``optimizer.keep_state`` the optimizer's state is kept there under
    ``optimizer_state_key`` (one key per model a client half trains).
    """
    common = dict(epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr, optimizer=recipe.optimizer,
                  seed=seed, state=state, optimizer_state_key=optimizer_state_key,
                  correct_gradients=correct_gradients, correct_weights=correct_weights, augment=augment)
    if recipe.dp is None:
        return train_locally(model, x, y, **common)
    from fedsim.privacy.local import train_privately

    return train_privately(model, x, y, **common, dp=recipe.dp)


def train_locally(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: ClientOptimizer,
    seed: int,
    state: RecordDict | None = None,
    optimizer_state_key: str = OPTIMIZER_STATE_KEY,
    correct_gradients: GradientCorrection | None = None,
    correct_weights: WeightCorrection | None = None,
    augment: Augmentation | None = None,
) -> dict[str, float]:
    """Minibatch steps of ``optimizer`` at ``lr`` on (x, y); every epoch's data order is drawn from ``seed``.

    Each step computes the minibatch's gradients, lets ``correct_gradients(parameters,
    gradients)`` adjust them (the gradient of an algorithm's local objective: FedProx's
    proximal term, FedDyn's linear and quadratic terms), steps the torch optimizer, then
    lets ``correct_weights(parameters, lr)`` move the weights in place (SCAFFOLD's
    control-variate correction). ``augment(inputs, generator)``, if given, transforms
    each minibatch's inputs with draws from the data-order generator, so augmented
    training stays reproducible. ``state`` (the node's state) holds the optimizer's
    state between rounds when ``optimizer.keep_state`` asks for it.

    Returns the mean training loss and accuracy over all examples seen (``loss``,
    ``accuracy``) and the number of optimizer steps taken (``num-steps``).
    """
    state = RecordDict() if state is None else state
    generator = torch.Generator().manual_seed(seed)
    parameters = [p for p in model.parameters() if p.requires_grad]
    torch_optimizer = optimizer.build(parameters, lr, state, optimizer_state_key)
    model.train()
    losses, hits, sizes = [], [], []  # read back once at the end: a GPU never waits for the host mid-epoch
    with torch.random.fork_rng(devices=rng_devices(x.device)):
        # dropout and other in-model randomness, without leaking out
        seed_device(x.device, seed)
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=generator).to(x.device)
            for start in range(0, len(y), batch_size):
                batch = order[start : start + batch_size]
                inputs, targets = x[batch], y[batch]
                if augment is not None:
                    inputs = augment(inputs, generator)
                logits = model(inputs)
                loss = F.cross_entropy(logits, targets)
                gradients = torch.autograd.grad(loss, parameters)
                if correct_gradients is not None:
                    gradients = correct_gradients(parameters, gradients)
                for parameter, gradient in zip(parameters, gradients):
                    parameter.grad = gradient
                torch_optimizer.step()
                if correct_weights is not None:
                    with torch.no_grad():
                        correct_weights(parameters, lr)
                losses.append(loss.detach())
                hits.append((logits.argmax(1) == targets).sum())
                sizes.append(len(batch))
    for parameter in parameters:
        parameter.grad = None
    optimizer.keep(torch_optimizer, state, optimizer_state_key)
    total_loss = sum(loss * size for loss, size in zip(torch.stack(losses).tolist(), sizes))
    seen = sum(sizes)
    return {"loss": total_loss / seen, "accuracy": int(torch.stack(hits).sum()) / seen, "num-steps": float(len(sizes))}


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> dict[str, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on (x, y)."""
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        logits = model(x[start : start + batch_size])
        targets = y[start : start + batch_size]
        total_loss += F.cross_entropy(logits, targets, reduction="sum").item()
        correct += (logits.argmax(1) == targets).sum().item()
    return {"loss": total_loss / len(y), "accuracy": correct / len(y)}
