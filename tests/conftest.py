"""Shared test helpers: compose fedsim configs the way the CLI does, tiny by default."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from fedsim.config import register_schemas

TINY = [
    "num_clients=5",
    "num_rounds=2",
    "client.local_epochs=1",
]


def compose_config(*overrides: str, tiny: bool = True) -> DictConfig:
    """The config ``fedsim OVERRIDES`` would run (with the tiny defaults first)."""
    register_schemas()
    with initialize_config_module("fedsim.conf", version_base=None):
        return compose("config", overrides=[*(TINY if tiny else []), *overrides])


@pytest.fixture
def digits_parquet(tmp_path: Path) -> dict[str, str]:
    """Local parquet files with the schema of ylecun/mnist (image, label) made from digits."""
    import datasets
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = [Image.fromarray((img * 255 / 16).astype(np.uint8)) for img in bunch.images]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])}
    )
    files = {}
    for split, rows in (("train", slice(0, 1500)), ("test", slice(1500, None))):
        ds = datasets.Dataset.from_dict({"image": images[rows], "label": bunch.target[rows]}, features=features)
        files[split] = str(tmp_path / f"{split}.parquet")
        ds.to_parquet(files[split])
    return files
