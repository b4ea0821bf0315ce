"""Local differential privacy: a client's local training as Opacus DP-SGD, one accountant per client across rounds."""

import copy
import importlib.util
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from flwr.app import ConfigRecord, RecordDict
from torch import nn
from torch.nn import functional as F

from fedsim.config.checks import ConfigError, require
from fedsim.devices import rng_devices
from fedsim.privacy.accounting import epsilon_spent, load_history, noise_for_budget, store_history
from fedsim.privacy.client_epsilons import ClientEpsilons
from fedsim.privacy.mechanism import PrivacyMechanism, check_budget, require_positive, warn_large_delta
from fedsim.optimizers import OPTIMIZER_STATE_KEY, ClientOptimizer
from fedsim.training import Augmentation, GradientCorrection, WeightCorrection

if TYPE_CHECKING:
    from fedsim.data import Federation

ACCOUNTANT_KEY = "dp-accountant"  # the node-state key of the client's accountant history
NOISE_KEY = "dp-noise-multiplier"
MAX_GRAD_NORM_KEY = "dp-max-grad-norm"
DELTA_KEY = "dp-delta"
ACCOUNTANT_NAME_KEY = "dp-accountant-name"
SECURE_MODE_KEY = "dp-secure-mode"


@dataclass(frozen=True)
class DPSGD:
    """The DP-SGD settings a training message carries under local DP.

    Attributes
    ----------
    noise_multiplier : float
        Noise std over the clipping norm.
    max_grad_norm : float
        Per-example clipping norm.
    delta : float
        The delta each client reports its epsilon at.
    accountant : str
        ``"rdp"`` or ``"prv"``.
    secure_mode : bool
        Opacus's cryptographically secure noise (not seeded).
    """

    noise_multiplier: float
    max_grad_norm: float
    delta: float
    accountant: str
    secure_mode: bool

    @classmethod
    def from_config(cls, config: ConfigRecord) -> "DPSGD | None":
        """The settings in a message's config record; None when it asks for plain SGD."""
        if NOISE_KEY not in config:
            return None
        return cls(
            noise_multiplier=float(config[NOISE_KEY]),
            max_grad_norm=float(config[MAX_GRAD_NORM_KEY]),
            delta=float(config[DELTA_KEY]),
            accountant=str(config[ACCOUNTANT_NAME_KEY]),
            secure_mode=bool(config[SECURE_MODE_KEY]),
        )

    def to_config(self) -> dict[str, float | str | bool]:
        return {
            NOISE_KEY: self.noise_multiplier,
            MAX_GRAD_NORM_KEY: self.max_grad_norm,
            DELTA_KEY: self.delta,
            ACCOUNTANT_NAME_KEY: self.accountant,
            SECURE_MODE_KEY: self.secure_mode,
        }


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
    optimizer: ClientOptimizer,
    seed: int,
    state: RecordDict,
    dp: DPSGD,
    optimizer_state_key: str = OPTIMIZER_STATE_KEY,
    correct_gradients: GradientCorrection | None = None,
    correct_weights: WeightCorrection | None = None,
    augment: Augmentation | None = None,
) -> dict[str, float]:
    """DP-SGD on (x, y) with Opacus: Poisson sampling, per-sample clipping, Gaussian noise.

    Each of ``batches_per_epoch`` steps per epoch takes every example with probability
    1 / batches_per_epoch, clips each example's gradient to ``dp.max_grad_norm``, adds
    N(0, (dp.noise_multiplier * dp.max_grad_norm)^2) to their sum and divides by the expected
    batch size; then ``optimizer`` (Opacus wraps the same torch optimizer as
    ``train_locally`` builds: SGD, Adam, ...) steps at ``lr``. With ``optimizer.keep_state``
    its state is kept in ``state`` under ``optimizer_state_key``.

    ``correct_gradients`` and ``correct_weights``, the client half's hooks, apply to the
    noised gradient and to the weights after the step: a correction that depends only on
    the weights, the server's message and the client's earlier private outputs
    (FedProx's proximal term, SCAFFOLD's control variates) is post-processing and keeps
    the guarantee. ``augment(inputs, generator)``, if given, transforms each sampled
    batch before its per-example gradients (each example's gradient still depends on
    that example alone), with draws from a generator seeded by ``seed``.

    The client's accountant history lives in ``state`` (its node's Context.state) and
    grows with every round, so the ``epsilon`` returned is the client's cumulative one
    at ``dp.delta``. Sampling and noise are drawn from ``seed`` unless ``dp.secure_mode``
    asks Opacus for a cryptographically secure generator.

    Returns ``loss`` and ``accuracy`` over the examples sampled (computed on the raw
    data: they describe the simulation and are not privatized), ``num-steps`` and
    ``epsilon``.
    """
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    secure_mode, accountant = dp.secure_mode, dp.accountant

    private = copy.deepcopy(model).train()  # Opacus hooks into the module it trains; the shared model stays plain
    total_loss, correct, seen, steps = 0.0, 0, 0, 0
    with torch.random.fork_rng(devices=rng_devices(x.device)), warnings.catch_warnings():
        # Opacus's hooks fire on the first layer, whose inputs never need gradients; torch warns each time.
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        warnings.filterwarnings("ignore", message="Secure RNG turned off", category=UserWarning)  # seeded on purpose
        engine = PrivacyEngine(accountant=accountant, secure_mode=secure_mode)
        engine.accountant.history = load_history(state, ACCOUNTANT_KEY)
        torch.manual_seed(seed)  # Opacus's Poisson sampler draws from torch's global generator
        parameters = [p for p in private.parameters() if p.requires_grad]
        module, dp_optimizer, loader = engine.make_private(
            module=private,
            optimizer=optimizer.build_torch(parameters, lr, state, optimizer_state_key),  # Opacus wraps a torch.optim one
            data_loader=DataLoader(TensorDataset(x, y), batch_size=batch_size),
            noise_multiplier=dp.noise_multiplier,
            max_grad_norm=dp.max_grad_norm,
            poisson_sampling=True,
            noise_generator=None if secure_mode else torch.Generator(x.device).manual_seed(seed),
        )
        augment_generator = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for inputs, targets in loader:
                inputs, targets = inputs.to(x.device), targets.to(x.device)  # an empty Poisson batch comes on the CPU
                if augment is not None:
                    inputs = augment(inputs, augment_generator)
                dp_optimizer.zero_grad()
                logits = module(inputs)
                loss = F.cross_entropy(logits, targets)
                loss.backward()  # an empty Poisson batch gives a NaN loss but zero per-sample gradients
                dp_optimizer.pre_step()  # clip, sum, noise, scale; the accountant counts the step
                if correct_gradients is not None:
                    corrected = correct_gradients(parameters, [p.grad for p in parameters])
                    for parameter, gradient in zip(parameters, corrected):
                        parameter.grad = gradient
                dp_optimizer.original_optimizer.step()
                if correct_weights is not None:
                    with torch.no_grad():
                        correct_weights(parameters, lr)
                if len(targets):
                    total_loss += loss.item() * len(targets)
                    correct += (logits.argmax(1) == targets).sum().item()
                    seen += len(targets)
                steps += 1
    optimizer.keep(dp_optimizer.original_optimizer, state, optimizer_state_key)
    model.load_state_dict(private.state_dict())
    history = engine.accountant.history
    store_history(state, ACCOUNTANT_KEY, history)
    return {
        "loss": total_loss / seen if seen else math.nan,
        "accuracy": correct / seen if seen else math.nan,
        "num-steps": float(steps),
        "epsilon": epsilon_spent(history, dp.delta, accountant),
    }


def train_sizes(federation: "Federation") -> list[int]:
    """Every client's number of local training examples, without materializing its tensors.

    The same split as ``Federation``: ``Federation.eval_size`` of a partition's
    examples are kept for evaluation.
    """
    sizes = []
    for partition_id in range(federation.num_clients):
        size = len(federation.partitioner.load_partition(partition_id))
        sizes.append(size - federation.eval_size(size))
    return sizes


class LocalDP(PrivacyMechanism):
    """Example-level DP: every client trains with Opacus DP-SGD (``privacy=local_dp``).

    Each client keeps one accountant across rounds and reports its cumulative
    ``epsilon``; the server reports the largest over clients (``ClientEpsilons``).

    Parameters
    ----------
    noise_multiplier : float | None
        Noise std over ``max_grad_norm``; None to compute it from ``target_epsilon``.
    target_epsilon : float | None
        The budget every client must stay within; the noise is then computed once for
        every step the run may take (num_rounds x local_epochs x batches per epoch of
        the client with the fewest), so no client ends above it.
    target_delta : float
        The delta of the guarantee.
    max_grad_norm : float
        Per-example clipping norm.
    accountant : str
        ``"rdp"`` or ``"prv"``.
    secure_mode : bool
        Opacus's cryptographically secure noise (needs torchcsprng; not seeded).
    """

    def __init__(
        self,
        *,
        noise_multiplier: float | None,
        target_epsilon: float | None,
        target_delta: float,
        max_grad_norm: float,
        accountant: str,
        secure_mode: bool,
    ) -> None:
        check_budget(noise_multiplier, target_epsilon, target_delta, accountant)
        require_positive("max_grad_norm", max_grad_norm)
        require(
            not secure_mode or importlib.util.find_spec("torchcsprng") is not None,
            "privacy.secure_mode=true needs the torchcsprng package (pip install torchcsprng), "
            "Opacus's cryptographically secure generator.",
        )
        self.noise_multiplier = noise_multiplier
        self.target_epsilon = target_epsilon
        self.target_delta = target_delta
        self.max_grad_norm = max_grad_norm
        self.accountant = accountant
        self.secure_mode = secure_mode

    def prepare(self, settings, federation, model):
        check_model(model, type(model).__name__)
        sizes = train_sizes(federation)
        warn_large_delta(self.target_delta, min(sizes), "the smallest client dataset")
        if self.target_epsilon is None:
            return
        # The worst client takes the fewest steps per epoch: at rate 1/k for R*E*k steps,
        # the privacy cost grows as the number k of batches per epoch shrinks.
        fewest = min(batches_per_epoch(size, settings.client.batch_size) for size in sizes)
        steps = settings.num_rounds * settings.client.local_epochs * fewest
        self.noise_multiplier = noise_for_budget(
            self.target_epsilon, self.target_delta, 1 / fewest, steps, self.accountant, "privacy.target_epsilon"
        )

    def train_config(self):
        settings = DPSGD(
            noise_multiplier=float(self.noise_multiplier),
            max_grad_norm=self.max_grad_norm,
            delta=self.target_delta,
            accountant=self.accountant,
            secure_mode=self.secure_mode,
        )
        return settings.to_config()

    def wrap(self, strategy, settings, node_partitions):
        return ClientEpsilons(strategy, node_partitions)
