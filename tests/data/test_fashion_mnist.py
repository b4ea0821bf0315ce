"""Tests for Fashion-MNIST: IDX files (Debian package layout), the hub fallback, missing files."""

import gzip
import struct

import datasets
import numpy as np
import pytest

import fedsim.data.loaders as loaders
from fedsim.config import ConfigError
from fedsim.data.fashion_mnist import DEBIAN_PACKAGE, IDX_FILES, load_fashion_mnist, read_idx
from tests.conftest import compose_config
from tests.option_files import option_settings

DEBIAN_DIRECTORY = "/usr/share/datasets/fashion-mnist"


def write_idx(path, array: np.ndarray) -> None:
    """IDX as its format page describes it: 0x0000, type 0x08 (ubyte), rank, big-endian sizes, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def idx_folder(tmp_path):
    """Tiny IDX files named as in the Debian package: 6 training and 3 test images of 28x28."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, (images_name, labels_name) in IDX_FILES.items():
        count = 6 if split == "train" else 3
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count, dtype=np.uint8)
        write_idx(tmp_path / images_name, images)
        write_idx(tmp_path / labels_name, labels)
        arrays[split] = (images, labels)
    return tmp_path, arrays


def test_read_idx_gives_the_written_array(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)


def test_idx_files_become_image_and_label_columns(idx_folder):
    folder, arrays = idx_folder
    data = load_fashion_mnist(**option_settings("dataset", "fashion_mnist", directory=str(folder)))
    assert data.train.column_names == ["image", "label"]
    assert isinstance(data.train.features["label"], datasets.ClassLabel)
    assert data.train.features["label"].names[9] == "Ankle boot"
    assert (data.input_shape, data.num_classes) == ((1, 28, 28), 10)
    for split in ("train", "test"):
        x, y = data.to_tensors(getattr(data, split))
        images, labels = arrays[split]
        np.testing.assert_allclose(x.numpy()[:, 0], images / 255.0, rtol=0, atol=1e-7)
        np.testing.assert_array_equal(y.numpy(), labels)


def test_normalization_is_applied_after_scaling(idx_folder):
    folder, arrays = idx_folder
    settings = option_settings("dataset", "fashion_mnist", directory=str(folder), mean=[0.2860], std=[0.3530])
    data = load_fashion_mnist(**settings)
    x, _ = data.to_tensors(data.test)
    np.testing.assert_allclose(x.numpy()[:, 0], (arrays["test"][0] / 255.0 - 0.2860) / 0.3530, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not (__import__("pathlib").Path(DEBIAN_DIRECTORY) / IDX_FILES["train"][0]).is_file(),
                    reason=f"the Debian package {DEBIAN_PACKAGE} is not installed")
def test_the_debian_package_gives_60000_and_10000_images():
    data = load_fashion_mnist(**option_settings("dataset", "fashion_mnist"))
    assert (len(data.train), len(data.test)) == (60_000, 10_000)
    # the published test set is balanced: 1,000 images per class
    np.testing.assert_array_equal(np.bincount(data.test.with_format("numpy")["label"]), [1000] * 10)


def test_without_files_the_hub_dataset_is_loaded(tmp_path, monkeypatch):
    from PIL import Image

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    split = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(np.full((28, 28), 51 * i, dtype=np.uint8)) for i in range(4)], "label": [0, 1, 2, 3]},
        features=features,
    )
    calls = []

    def fake_load_dataset(path, *args, **kwargs):
        calls.append(path)
        return datasets.DatasetDict({"train": split, "test": split})

    monkeypatch.setattr(loaders.datasets, "load_dataset", fake_load_dataset)
    data = load_fashion_mnist(**option_settings("dataset", "fashion_mnist", directory=str(tmp_path / "absent")))
    assert calls == ["zalando-datasets/fashion_mnist"]
    x, y = data.to_tensors(data.test)
    np.testing.assert_allclose(x.numpy()[:, 0, 0, 0], [0.0, 0.2, 0.4, 0.6], atol=1e-7)
    np.testing.assert_array_equal(y.numpy(), [0, 1, 2, 3])


def test_no_files_and_no_hub_is_one_sentence_naming_the_package_and_path(tmp_path, monkeypatch):
    def offline(path, *args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(loaders.datasets, "load_dataset", offline)
    cfg = compose_config("dataset=fashion_mnist", f"dataset.directory={tmp_path}/absent")
    from fedsim.instantiate import build

    with pytest.raises(ConfigError) as raised:
        build(cfg.dataset)
    message = str(raised.value)
    assert DEBIAN_PACKAGE in message and f"{tmp_path}/absent" in message and "zalando-datasets/fashion_mnist" in message
    assert "\n" not in message and message.endswith(".")
