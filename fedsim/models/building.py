"""Build a configured model for a dataset, seeded, and check that it fits the data."""

import functools
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from fedsim.config import ConfigError
from fedsim.instantiate import build


@dataclass(frozen=True)
class ModelFactory:
    """Everything needed to build a run's model, small and picklable (it travels to Ray actors and workers).

    Attributes
    ----------
    config : str
        The model option (``_target_`` and settings) as YAML.
    input_shape : tuple[int, ...]
        Shape of one example, from the dataset.
    num_classes : int
        Number of classes, from the dataset.
    seed : int
        Seed of the initial weights.
    """

    config: str
    input_shape: tuple[int, ...]
    num_classes: int
    seed: int

    @classmethod
    def from_config(cls, model_cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int, seed: int) -> "ModelFactory":
        return cls(OmegaConf.to_yaml(model_cfg, resolve=True), tuple(input_shape), int(num_classes), int(seed))

    @property
    def name(self) -> str:
        return OmegaConf.create(self.config)._target_.rsplit(".", 1)[-1]

    def __call__(self) -> nn.Module:
        """A new model with weights drawn from ``seed``; the global torch random state is left as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return build(OmegaConf.create(self.config), input_shape=self.input_shape, num_classes=self.num_classes)

    def build_checked(self, input_dtype: str = "float32") -> nn.Module:
        """A new model, checked against the dataset's inputs (ConfigError if it does not fit them).

        A model that takes token ids rather than real values says so with an
        ``input_dtype`` attribute (``torch.int64``); it must match the dataset's
        ``input_dtype`` (``"float32"`` or ``"int64"``), then one forward pass of that type
        checks the shape.
        """
        try:
            model = self()
            takes = getattr(model, "input_dtype", torch.float32)
            if takes != getattr(torch, input_dtype):
                kinds = {torch.float32: "real-valued features", torch.int64: "token ids"}
                raise ConfigError(
                    f"model {self.name} takes {kinds.get(takes, takes)} but the dataset gives "
                    f"{kinds.get(getattr(torch, input_dtype), input_dtype)}; choose a model for this dataset."
                )
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                out = model(torch.zeros(2, *self.input_shape, dtype=takes))
        except ConfigError:
            raise  # a setting the model itself refused, or the inputs' type
        except (ValueError, RuntimeError) as error:
            raise ConfigError(
                f"model {self.name} does not fit the dataset's input shape {self.input_shape}: {error}."
            ) from error
        if tuple(out.shape) != (2, self.num_classes):
            raise ConfigError(
                f"model {self.name} outputs shape {tuple(out.shape[1:])} but the dataset has {self.num_classes} classes."
            )
        return model


@functools.lru_cache(maxsize=2)
def shared_model(factory: ModelFactory, device: torch.device) -> nn.Module:
    """One model per process for ``factory``, on ``device``: clients load each message's weights
    into it, so a process builds it once whatever number of clients it serves."""
    return factory().to(device)


def build_model(
    model_cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int, seed: int, input_dtype: str = "float32"
) -> nn.Module:
    """Instantiate ``model_cfg`` with weights drawn from ``seed`` and check it against the dataset's inputs."""
    return ModelFactory.from_config(model_cfg, input_shape, num_classes, seed).build_checked(input_dtype)
