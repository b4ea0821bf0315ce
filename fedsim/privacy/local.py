"""Local differential privacy: a client's local training as Opacus DP-SGD, one accountant per client across rounds."""

import copy
import math
import warnings
from collections.abc import Callable, Sequence

import torch
from flwr.app import RecordDict
from torch import nn
from torch.nn import functional as F

from fedsim.config import ConfigError
from fedsim.privacy.accounting import epsilon_spent, load_history, store_history

ACCOUNTANT_KEY = "dp-accountant"
NOISE_KEY = "dp-noise-multiplier"


def batches_per_epoch(num_examples: int, batch_size: int) -> int:
    """Steps of one epoch of Poisson sampling, as Opacus's DPDataLoader takes them;
    each example joins each step with probability ``1 / batches_per_epoch``."""
    return math.ceil(num_examples / batch_size)


def check_model(model: nn.Module, name: str) -> None:
    """Refuse a model Opacus cannot train with per-sample clipping, in one sentence.

    BatchNorm mixes the examples of a batch, so per-sample gradients do not exist;
    Opacus would swap it for GroupNorm (``ModuleValidator.fix``), but the clients'
    weights must keep the keys of the server's model, so fedsim refuses instead.
    """
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise ConfigError(
            f"privacy=local_dp cannot train model {name}: {errors[0]} "
            "(use a model with GroupNorm or no normalization)."
        )


def train_privately(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    state: RecordDict,
    noise_multiplier: float,
    max_grad_norm: float,
    delta: float,
    accountant: str,
    secure_mode: bool,
    correct_gradients: Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], Sequence[torch.Tensor]] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> dict[str, float]:
    """DP-SGD on (x, y) with Opacus: Poisson sampling, per-sample clipping, Gaussian noise.

    Each of ``batches_per_epoch`` steps per epoch takes every example with probability
    1 / batches_per_epoch, clips each example's gradient to ``max_grad_norm``, adds
    N(0, (noise_multiplier * max_grad_norm)^2) to their sum and divides by the expected
    batch size; then plain SGD steps at ``lr``, as in ``train_locally``.

    ``correct_gradients``, the client half's hook, is applied to the noised gradient:
    a correction that depends only on the weights, the server's message and the
    client's earlier private outputs (FedProx's proximal term, SCAFFOLD's control
    variates) is post-processing and keeps the guarantee. ``augment(inputs,
    generator)``, if given, transforms each sampled batch before its per-example
    gradients (each example's gradient still depends on that example alone), with draws
    from a generator seeded by ``seed``.

    The client's accountant history lives in ``state`` (its node's Context.state) and
    grows with every round, so the ``epsilon`` returned is the client's cumulative one
    at ``delta``. Sampling and noise are drawn from ``seed`` unless ``secure_mode``
    asks Opacus for a cryptographically secure generator.

    Returns ``loss`` and ``accuracy`` over the examples sampled (computed on the raw
    data: they describe the simulation and are not privatized), ``num-steps`` and
    ``epsilon``.
    """
    from opacus import PrivacyEngine
    from torch.optim import SGD  # imported here: torch.optim costs seconds of start-up
    from torch.utils.data import DataLoader, TensorDataset

    private = copy.deepcopy(model).train()  # Opacus hooks into the module it trains; the shared model stays plain
    total_loss, correct, seen, steps = 0.0, 0, 0, 0
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # Opacus's hooks fire on the first layer, whose inputs never need gradients; torch warns each time.
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        warnings.filterwarnings("ignore", message="Secure RNG turned off", category=UserWarning)  # seeded on purpose
        engine = PrivacyEngine(accountant=accountant, secure_mode=secure_mode)
        engine.accountant.history = load_history(state, ACCOUNTANT_KEY)
        torch.manual_seed(seed)  # Opacus's Poisson sampler draws from torch's global generator
        module, optimizer, loader = engine.make_private(
            module=private,
            optimizer=SGD(private.parameters(), lr=lr),
            data_loader=DataLoader(TensorDataset(x, y), batch_size=batch_size),
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            poisson_sampling=True,
            noise_generator=None if secure_mode else torch.Generator().manual_seed(seed),
        )
        parameters = [p for p in module.parameters() if p.requires_grad]
        augment_generator = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for inputs, targets in loader:
                if augment is not None:
                    inputs = augment(inputs, augment_generator)
                optimizer.zero_grad()
                logits = module(inputs)
                loss = F.cross_entropy(logits, targets)
                loss.backward()  # an empty Poisson batch gives a NaN loss but zero per-sample gradients
                optimizer.pre_step()  # clip, sum, noise, scale; the accountant counts the step
                if correct_gradients is not None:
                    corrected = correct_gradients(parameters, [p.grad for p in parameters])
                    for parameter, gradient in zip(parameters, corrected):
                        parameter.grad = gradient
                optimizer.original_optimizer.step()
                if len(targets):
                    total_loss += loss.item() * len(targets)
                    correct += (logits.argmax(1) == targets).sum().item()
                    seen += len(targets)
                steps += 1
    model.load_state_dict(private.state_dict())
    history = engine.accountant.history
    store_history(state, ACCOUNTANT_KEY, history)
    return {
        "loss": total_loss / seen if seen else math.nan,
        "accuracy": correct / seen if seen else math.nan,
        "num-steps": float(steps),
        "epsilon": epsilon_spent(history, delta, accountant),
    }
