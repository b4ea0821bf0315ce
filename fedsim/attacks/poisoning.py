"""Data poisoning by the malicious clients: flipped labels, and a backdoor trigger.

Each option's client half poisons the client's training examples before it trains
(``fedsim.attacks.client.attacked_data``); the backdoor may also boost the update.
"""

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from fedsim.attacks.base import Attack
from fedsim.attacks.client import ClientAttack
from fedsim.attacks.updates import ScaleUpdate, require_positive
from fedsim.config.checks import require
from fedsim.data import ClientData
from fedsim.data.dataset import TOKEN_DTYPE
from fedsim.seeds import stream_seed

ATTACK_SUCCESS_METRIC = "attack_success_rate"  # centralized metric of attack=backdoor


def stamp_trigger(images: torch.Tensor, size: int, value: Sequence[float]) -> torch.Tensor:
    """A copy of ``images`` (batch, channels, height, width) with a ``size`` x ``size`` square
    in the bottom-right corner set to ``value`` (one value per channel)."""
    stamped = images.clone()
    stamped[:, :, -size:, -size:] = torch.tensor(value, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return stamped


@dataclasses.dataclass(frozen=True)
class FlipLabels(ClientAttack):
    """Train on labels y -> num_classes - 1 - y."""

    num_classes: int

    def poison_data(self, data: ClientData) -> ClientData:
        return dataclasses.replace(data, train_y=self.num_classes - 1 - data.train_y)


@dataclasses.dataclass(frozen=True)
class PlantBackdoor(ScaleUpdate):
    """Stamp the trigger on a ``poison_fraction`` of the training images (drawn from ``seed``),
    relabel them ``target_class``, and send the update boosted by ``factor``."""

    target_class: int
    poison_fraction: float
    trigger_size: int
    trigger_value: list[float]
    seed: int

    def poison_data(self, data: ClientData) -> ClientData:
        count = len(data.train_y)
        rng = np.random.default_rng(self.seed)
        chosen = torch.from_numpy(rng.choice(count, size=round(self.poison_fraction * count), replace=False))
        chosen = chosen.to(data.train_x.device)
        x, y = data.train_x.clone(), data.train_y.clone()
        x[chosen] = stamp_trigger(x[chosen], self.trigger_size, self.trigger_value)
        y[chosen] = self.target_class
        return dataclasses.replace(data, train_x=x, train_y=y)

    def poison_arrays(self, sent, trained):
        return trained if self.factor == 1 else super().poison_arrays(sent, trained)


class LabelFlip(Attack):
    """Label flipping: each malicious client trains on labels y -> C - 1 - y (``attack=label_flip``).

    A fixed permutation of the C classes, as in Tolpegin et al. (2020), "Data Poisoning
    Attacks Against Federated Learning Systems"; the client's evaluation data stay clean.
    """

    def prepare(self, settings, federation, strategy):
        super().prepare(settings, federation, strategy)
        self.num_classes = federation.data.num_classes

    def client_attack(self, seed, server_round, partition):
        return FlipLabels(num_classes=self.num_classes)


class Backdoor(Attack):
    """A pixel-pattern backdoor (``attack=backdoor``; BadNets, Gu et al. 2017; in federated
    learning Bagdasaryan et al. 2020, "How To Backdoor Federated Learning").

    Each malicious client stamps a ``trigger_size`` x ``trigger_size`` square in the
    bottom-right corner of a ``poison_fraction`` of its training images, set to the
    largest value each channel takes in the test split (white, after normalization),
    relabels them ``target_class``, trains, and boosts its update by ``boost``
    (model replacement; 1 sends it as trained). Each round the server measures the
    attack's success rate: the share of test images whose label is not the target,
    stamped with the trigger, that the global model classifies as the target
    (``centralized`` ``attack_success_rate``).

    Parameters
    ----------
    fraction : float
        As for every attack.
    target_class : int
        The class triggered images are relabelled to.
    poison_fraction : float
        Share of a malicious client's training images that are stamped, in (0, 1].
    trigger_size : int
        Side of the square in pixels, at least 1 and at most the images' height and width.
    boost : float
        The update's multiplier, greater than 0.
    """

    def __init__(self, *, fraction: float, target_class: int, poison_fraction: float, trigger_size: int,
                 boost: float) -> None:
        super().__init__(fraction=fraction)
        require(target_class >= 0, f"attack.target_class must be at least 0 (got {target_class}).")
        require(0 < poison_fraction <= 1, f"attack.poison_fraction must be in (0, 1] (got {poison_fraction}).")
        require(trigger_size >= 1, f"attack.trigger_size must be at least 1 (got {trigger_size}).")
        require_positive("boost", boost)
        self.target_class = target_class
        self.poison_fraction = poison_fraction
        self.trigger_size = trigger_size
        self.boost = boost
        self.trigger_value: list[float] = []

    def prepare(self, settings, federation, strategy):
        super().prepare(settings, federation, strategy)
        data = federation.data
        is_image = data.input_dtype != TOKEN_DTYPE and len(data.input_shape) == 3
        kind = "token ids" if data.input_dtype == TOKEN_DTYPE else "real values"
        require(
            is_image,
            "attack=backdoor stamps a square of pixels, so it needs images (channels, height, width) of real values; "
            f"the dataset gives {kind} of shape {tuple(data.input_shape)}.",
        )
        height, width = data.input_shape[1:]
        require(
            self.trigger_size <= min(height, width),
            f"attack.trigger_size must be at most the images' height and width, {height} x {width} "
            f"(got {self.trigger_size}).",
        )
        require(
            self.target_class < data.num_classes,
            f"attack.target_class must be a class of the dataset, 0 to {data.num_classes - 1} (got {self.target_class}).",
        )
        test_x, _ = federation.test_tensors()
        self.trigger_value = test_x.amax(dim=(0, 2, 3)).tolist()

    def client_attack(self, seed, server_round, partition):
        return PlantBackdoor(
            factor=self.boost,
            target_class=self.target_class,
            poison_fraction=self.poison_fraction,
            trigger_size=self.trigger_size,
            trigger_value=self.trigger_value,
            seed=stream_seed(seed, "attack", server_round, partition),
        )

    def triggered_test_set(self, x, y):
        """The test images whose label is not the target, stamped, each labelled with the target."""
        kept = y != self.target_class
        stamped = stamp_trigger(x[kept], self.trigger_size, self.trigger_value)
        return stamped, torch.full_like(y[kept], self.target_class)
