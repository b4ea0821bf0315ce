"""Fashion-MNIST from the IDX files of the Debian package, or from the Hugging Face hub."""

import gzip
import math
import zlib
from pathlib import Path

import datasets
import numpy as np

from fedsim.config import ConfigError
from fedsim.data.dataset import FederatedData
from fedsim.data.loaders import check_normalization, load_huggingface

DEBIAN_PACKAGE = "dataset-fashion-mnist"
# The class names of the hub's zalando-datasets/fashion_mnist, in label order.
CLASS_NAMES = ["T - shirt / top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: Path) -> np.ndarray:
    """The array stored in a gzipped IDX file (magic: two zero bytes, type code, rank).

    A file that is truncated, not gzip, or shorter than its header says raises a
    ValueError naming it.
    """
    try:
        with gzip.open(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError, zlib.error) as error:  # a truncated gzip stream raises EOFError
        raise ValueError(f"'{path}' is not a complete gzip file ({error})") from error
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"'{path}' is not an IDX file of unsigned bytes")
    rank = raw[3]
    offset = 4 + 4 * rank
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    if len(raw) != offset + math.prod(shape):
        raise ValueError(
            f"'{path}' has {len(raw) - offset} bytes of data, not the {math.prod(shape)} its header announces "
            f"(shape {shape})"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def images_dataset(images: np.ndarray, labels: np.ndarray) -> datasets.Dataset:
    """An ``image`` (28x28 uint8 Array2D) and ``label`` (ClassLabel) dataset over the arrays.

    The Arrow columns are built from the arrays' buffers directly: ``Dataset.from_dict``
    takes about 20 times longer for the 60,000 training images.
    """
    import pyarrow as pa

    num_images, height, width = images.shape

    def lists(count: int, length: int, values: pa.Array) -> pa.ListArray:
        return pa.ListArray.from_arrays(pa.array(np.arange(0, (count + 1) * length, length, dtype=np.int32)), values)

    rows = lists(num_images * height, width, pa.array(images.reshape(-1)))
    image_type = datasets.features.features.Array2DExtensionType((height, width), "uint8")
    table = pa.table(
        {
            "image": pa.ExtensionArray.from_storage(image_type, lists(num_images, height, rows)),
            "label": pa.array(labels.astype(np.int64)),
        }
    )
    features = datasets.Features(
        {"image": datasets.Array2D((height, width), "uint8"), "label": datasets.ClassLabel(names=CLASS_NAMES)}
    )
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=features))


def load_fashion_mnist(
    *, directory: str, hub_path: str, mean: list[float] | None, std: list[float] | None
) -> FederatedData:
    """Fashion-MNIST (60,000 training and 10,000 test images, 28x28, 10 classes).

    Read from the IDX files in ``directory`` (what the Debian package
    ``dataset-fashion-mnist`` installs) when they are there, otherwise loaded from the
    hub as ``hub_path``. Both give an ``image`` and a ``label`` column (a ClassLabel
    with the hub's class names); the local images are stored as 28x28 uint8 arrays.

    Parameters
    ----------
    directory : str
        Folder of the four gzipped IDX files.
    hub_path : str
        Hub dataset loaded when the folder lacks them.
    mean, std : list[float] | None
        Per-channel normalization after scaling to [0, 1]; both or neither.
    """
    # Checked before loading: the hub fallback below would report a ConfigError as a failed download.
    check_normalization(mean, std)
    folder = Path(directory)
    if all((folder / name).is_file() for pair in IDX_FILES.values() for name in pair):
        try:
            arrays = {
                split: (read_idx(folder / images), read_idx(folder / labels))
                for split, (images, labels) in IDX_FILES.items()
            }
        except ValueError as error:
            raise ConfigError(
                f"dataset.directory: {error}; reinstall the Debian package {DEBIAN_PACKAGE} "
                f"(apt-get install --reinstall {DEBIAN_PACKAGE}) or point dataset.directory at a complete copy."
            ) from error
        splits = {split: images_dataset(*pair) for split, pair in arrays.items()}
        return FederatedData(
            train=splits["train"],
            test=splits["test"],
            feature_columns=["image"],
            label_column="label",
            input_shape=(1, 28, 28),
            num_classes=len(CLASS_NAMES),
            feature_scale=255.0,
            mean=None if mean is None else tuple(mean),
            std=None if std is None else tuple(std),
        )
    try:
        # The hub dataset has its own test split, so test_fraction and seed decide nothing.
        return load_huggingface(
            path=hub_path,
            data_files=None,
            name=None,
            train_split="train",
            test_split="test",
            test_fraction=0.2,
            feature_columns=["image"],
            label_column="label",
            natural_id_column=None,
            feature_scale=255.0,
            mean=mean,
            std=std,
            augment=False,
            seed=0,
        )
    except ConfigError as error:
        raise ConfigError(
            f"dataset=fashion_mnist: no IDX files in {directory} (the Debian package {DEBIAN_PACKAGE} "
            f"installs them: apt-get install {DEBIAN_PACKAGE}) and the hub dataset '{hub_path}' could not "
            f"be loaded ({str(error.__cause__ or error).rstrip('.')})."
        ) from error
