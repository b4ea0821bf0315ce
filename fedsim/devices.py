"""Where a run's tensors live: the ``device`` setting, checked once and resolved in each process.

``device`` is ``cpu`` (the default), ``cuda`` (the current GPU), ``cuda:N`` or ``auto``
(``cuda`` when torch finds a GPU, else ``cpu``). The run plan checks it before
training and settles ``auto``; every process that trains or evaluates (this one, the
local engine's workers, Ray's actors) then puts the model and its data on the device
its ClientApp was built for.
"""

import functools
import re

import torch

from fedsim.config.checks import require

CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str) -> torch.device:
    """The torch device ``name`` (a ``device`` setting) means here; ConfigError (one sentence) if there is none."""
    require(
        name in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", name) is not None,
        f"device must be {CHOICES} (got {name!r}).",
    )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    require(
        torch.cuda.is_available(),
        f"device={name} needs a CUDA GPU, but this torch ({torch.__version__}) finds none; "
        "use device=cpu or device=auto.",
    )
    index = torch.cuda.current_device() if name == "cuda" else int(name.split(":")[1])
    count = torch.cuda.device_count()
    require(index < count, f"device={name} names GPU {index}, but there are {count} (cuda:0 to cuda:{count - 1}).")
    return torch.device("cuda", index)


def describe(device: torch.device) -> str:
    """The device and, for a GPU, its name: what a run records about where it ran."""
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


@functools.cache
def client_device(name: str) -> torch.device:
    """The device a ClientApp built for ``name`` uses in this process (resolved once per process)."""
    return resolve_device(name)


def rng_devices(device: torch.device) -> list[int]:
    """The GPUs whose random state ``torch.random.fork_rng`` must save for work on ``device``."""
    return [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []


def seed_device(device: torch.device, seed: int) -> None:
    """Seed the random generator of in-model randomness (dropout) on ``device``.

    On the CPU that is torch's default generator only: ``torch.manual_seed`` also seeds
    every accelerator backend and costs far more.
    """
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


def on_device(tensors: tuple[torch.Tensor, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """``tensors`` on ``device`` (the same tensors where they are there already)."""
    return tuple(tensor.to(device) for tensor in tensors)
