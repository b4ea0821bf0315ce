"""Local parquet files with the schemas of the hub datasets fedsim names (for tests: no network)."""

from pathlib import Path

import datasets
import numpy as np
from PIL import Image


def write_cifar10_parquet(folder: Path, num_train: int = 40, num_test: int = 10, seed: int = 0) -> dict[str, str]:
    """uoft-cs/cifar10's schema: ``img`` (32x32 RGB Image) and ``label`` (10-class ClassLabel)."""
    rng = np.random.default_rng(seed)
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    files = {}
    for split, count in (("train", num_train), ("test", num_test)):
        pixels = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
        ds = datasets.Dataset.from_dict(
            {"img": [Image.fromarray(p) for p in pixels], "label": np.arange(count) % 10}, features=features
        )
        files[split] = str(folder / f"cifar10-{split}.parquet")
        ds.to_parquet(files[split])
    return files


def write_femnist_parquet(folder: Path, num_writers: int = 6, per_writer: int = 8, seed: int = 0) -> dict[str, str]:
    """flwrlabs/femnist's schema: ``image`` (28x28 grey), ``writer_id``, ``hsf_id``, ``character``
    (62-class ClassLabel); one train split, as on the hub."""
    rng = np.random.default_rng(seed)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "writer_id": datasets.Value("string"),
            "hsf_id": datasets.Value("int64"),
            "character": datasets.ClassLabel(num_classes=62),
        }
    )
    count = num_writers * per_writer
    pixels = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    ds = datasets.Dataset.from_dict(
        {
            "image": [Image.fromarray(p) for p in pixels],
            "writer_id": [f"f{index // per_writer:04d}_00" for index in range(count)],
            "hsf_id": [index // per_writer % 4 for index in range(count)],
            "character": rng.integers(0, 62, size=count),
        },
        features=features,
    )
    path = str(folder / "femnist-train.parquet")
    ds.to_parquet(path)
    return {"train": path}
