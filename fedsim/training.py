"""Local training and evaluation loops run by every client and by the server's evaluation."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from flwr.app import ConfigRecord, RecordDict
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from fedsim.privacy.local import DPSGD

GradientCorrection = Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], Sequence[torch.Tensor]]
Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

LR_KEY, EPOCHS_KEY, BATCH_SIZE_KEY = "lr", "local-epochs", "batch-size"


@dataclass(frozen=True)
class TrainingRecipe:
    """How a client trains in one round, as the server's message says (its config record).

    Attributes
    ----------
    epochs, batch_size, lr : int, int, float
        Local epochs, minibatch size and SGD learning rate.
    dp : DPSGD | None
        Local differential privacy (Opacus DP-SGD) settings, or None for plain SGD.
    """

    epochs: int
    batch_size: int
    lr: float
    dp: "DPSGD | None" = None

    @classmethod
    def from_config(cls, config: ConfigRecord) -> "TrainingRecipe":
        from fedsim.privacy.local import DPSGD

        return cls(
            epochs=int(config[EPOCHS_KEY]),
            batch_size=int(config[BATCH_SIZE_KEY]),
            lr=float(config[LR_KEY]),
            dp=DPSGD.from_config(config),
        )

    def to_config(self) -> dict[str, int | float | str | bool]:
        """The config-record entries that describe this recipe."""
        entries = {LR_KEY: self.lr, EPOCHS_KEY: self.epochs, BATCH_SIZE_KEY: self.batch_size}
        return entries | (self.dp.to_config() if self.dp is not None else {})


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: TrainingRecipe,
    *,
    seed: int,
    state: RecordDict,
    correct_gradients: GradientCorrection | None = None,
    augment: Augmentation | None = None,
) -> dict[str, float]:
    """Train ``model`` on (x, y) as ``recipe`` says: plain minibatch SGD, or DP-SGD under local DP.

    The one training function of every client half (FedAvg's, SCAFFOLD's, Ditto's
    personal model, ...), so that local DP and augmentation reach every model a client
    trains. Under DP-SGD the client's accountant lives in ``state`` (its node's
    ``Context.state``), so every model trained on the client's data is accounted.
    """
    common = dict(epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr, seed=seed,
                  correct_gradients=correct_gradients, augment=augment)
    if recipe.dp is None:
        return train_locally(model, x, y, **common)
    from fedsim.privacy.local import train_privately

    return train_privately(model, x, y, **common, state=state, dp=recipe.dp)


def train_locally(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    correct_gradients: GradientCorrection | None = None,
    augment: Augmentation | None = None,
) -> dict[str, float]:
    """Plain minibatch SGD on (x, y); the data order of every epoch is drawn from ``seed``.

    ``correct_gradients(parameters, gradients)``, if given, adjusts each minibatch's
    gradients before the step: the hook an algorithm's client half uses (FedProx's
    proximal term, SCAFFOLD's control variates). ``augment(inputs, generator)``, if
    given, transforms each minibatch's inputs with draws from the data-order generator,
    so augmented training stays reproducible.

    Returns the mean training loss and accuracy over all examples seen (``loss``,
    ``accuracy``) and the number of optimizer steps taken (``num-steps``).
    """
    generator = torch.Generator().manual_seed(seed)
    parameters = [p for p in model.parameters() if p.requires_grad]
    model.train()
    total_loss, correct, seen, steps = 0.0, 0, 0, 0
    with torch.random.fork_rng(devices=[]):
        # dropout and other in-model randomness, without leaking out (CPU generator only:
        # torch.manual_seed also seeds every accelerator backend and costs far more)
        torch.default_generator.manual_seed(seed)
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=generator)
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
                with torch.no_grad():
                    for parameter, gradient in zip(parameters, gradients):
                        parameter.add_(gradient, alpha=-lr)
                total_loss += loss.item() * len(batch)
                correct += (logits.argmax(1) == targets).sum().item()
                seen += len(batch)
                steps += 1
    return {"loss": total_loss / seen, "accuracy": correct / seen, "num-steps": float(steps)}


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
