"""Build a configured model for a dataset, seeded, and check that it fits the data."""

import torch
from omegaconf import DictConfig
from torch import nn

from fedsim.config import ConfigError
from fedsim.instantiate import build


def build_model(
    model_cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int, seed: int
) -> nn.Module:
    """Instantiate ``model_cfg`` with weights drawn from ``seed`` and check one forward pass.

    A model that takes token ids rather than real values says so with an
    ``input_dtype`` attribute (``torch.int64``); the check feeds it that type.
    The global torch random state is left as it was.
    """
    name = model_cfg._target_.rsplit(".", 1)[-1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = build(model_cfg, input_shape=tuple(input_shape), num_classes=num_classes)
            with torch.no_grad():
                out = model(torch.zeros(2, *input_shape, dtype=getattr(model, "input_dtype", torch.float32)))
        except (ValueError, RuntimeError) as error:
            raise ConfigError(
                f"model {name} does not fit the dataset's input shape {tuple(input_shape)}: {error}."
            ) from error
    if tuple(out.shape) != (2, num_classes):
        raise ConfigError(
            f"model {name} outputs shape {tuple(out.shape[1:])} but the dataset has {num_classes} classes."
        )
    return model
