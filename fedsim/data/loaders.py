"""Dataset loaders: each returns a FederatedData built on Hugging Face ``datasets``."""

import gzip
import importlib.util
from pathlib import Path

import datasets
import numpy as np

from fedsim.config.checks import ConfigError, require
from fedsim.data.augmentation import RandomCropFlip
from fedsim.data.columns import check_feature_columns, check_label_column
from fedsim.data.dataset import FederatedData, features_array, infer_input_shape
from fedsim.data.synthetic import generate_synthetic


def check_test_fraction(test_fraction: float) -> None:
    """Raise ConfigError unless ``dataset.test_fraction`` leaves examples on both sides of the split."""
    require(
        0 < test_fraction < 1,
        f"dataset.test_fraction must be strictly between 0 and 1 (got {test_fraction}).",
    )


def check_normalization(mean: list[float] | None, std: list[float] | None) -> None:
    """Raise ConfigError unless ``dataset.mean`` and ``dataset.std`` are both null or both per-channel values.

    Whether their length fits the data's channels is checked once the data is loaded.
    """
    require(
        (mean is None) == (std is None),
        "dataset.mean and dataset.std go together: set both (one value per channel) or neither.",
    )
    if mean is None:
        return
    require(
        len(mean) == len(std) and len(mean) >= 1,
        f"dataset.mean and dataset.std must have the same number of values (got {len(mean)} and {len(std)}).",
    )
    require(all(value > 0 for value in std), f"dataset.std values must be greater than 0 (got {list(std)}).")


def load_digits(*, test_fraction: float, seed: int) -> FederatedData:
    """scikit-learn's bundled 8x8 handwritten digits (1797 examples, 10 classes).

    Parameters
    ----------
    test_fraction : float
        Share of the examples held out as the test split, strictly between 0 and 1.
    seed : int
        Seed of the train/test split.
    """
    check_test_fraction(test_fraction)
    pixels, labels = read_sklearn_digits()
    full = datasets.Dataset.from_dict({"x": pixels.astype(np.float32), "label": labels})
    split = full.train_test_split(test_size=test_fraction, seed=seed)
    return FederatedData(
        train=split["train"],
        test=split["test"],
        feature_columns=["x"],
        label_column="label",
        input_shape=(1, 8, 8),
        num_classes=10,
        feature_scale=16.0,
    )


def read_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits as ``sklearn.datasets.load_digits`` returns them: (1797, 64) pixels, labels.

    The file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``: 64 pixel
    values and the label per line) is read directly, which takes milliseconds where
    importing scikit-learn takes more than a second; without that file, scikit-learn's
    own loader is used.
    """
    package = importlib.util.find_spec("sklearn")  # locates the package without importing it
    path = Path(package.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        from sklearn.datasets import load_digits as sklearn_digits

        return sklearn_digits(return_X_y=True)
    with gzip.open(path, "rt") as rows:
        table = np.loadtxt(rows, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)


def load_synthetic(
    *, alpha: float, beta: float, iid: bool, num_users: int, test_fraction: float, seed: int
) -> FederatedData:
    """Synthetic(alpha, beta) of Li et al. (2020); each user's last ``test_fraction`` is held out.

    Parameters
    ----------
    alpha : float
        Standard deviation of the per-user model mean; at least 0.
    beta : float
        Standard deviation of the per-user feature-mean offset; at least 0.
    iid : bool
        Generate the IID variant (one shared model, no feature offsets).
    num_users : int
        Number of users, each one natural partition (the ``user`` column); at least 1.
    test_fraction : float
        Share of each user's examples held out, strictly between 0 and 1.
    seed : int
        Seed of the generator.
    """
    require(alpha >= 0, f"dataset.alpha must be at least 0 (got {alpha}).")
    require(beta >= 0, f"dataset.beta must be at least 0 (got {beta}).")
    require(num_users >= 1, f"dataset.num_users must be at least 1 (got {num_users}).")
    check_test_fraction(test_fraction)
    data = generate_synthetic(alpha, beta, iid=iid, num_users=num_users, seed=seed)
    is_test = np.zeros(len(data.y), dtype=bool)
    for user in range(num_users):
        rows = np.flatnonzero(data.user == user)
        num_test = max(1, int(round(test_fraction * len(rows))))
        is_test[rows[-num_test:]] = True
    columns = {"x": data.x, "label": data.y, "user": data.user}

    def subset(mask: np.ndarray) -> datasets.Dataset:
        return datasets.Dataset.from_dict({k: v[mask] for k, v in columns.items()})

    return FederatedData(
        train=subset(~is_test),
        test=subset(is_test),
        feature_columns=["x"],
        label_column="label",
        input_shape=(data.x.shape[1],),
        num_classes=10,
        natural_id_column="user",
    )


def load_huggingface(
    *,
    path: str,
    data_files: str | list[str] | dict[str, str | list[str]] | None,
    name: str | None,
    train_split: str,
    test_split: str | None,
    test_fraction: float,
    feature_columns: list[str],
    label_column: str,
    natural_id_column: str | None,
    feature_scale: float,
    mean: list[float] | None,
    std: list[float] | None,
    augment: bool,
    seed: int,
) -> FederatedData:
    """A dataset from the Hugging Face hub (``path="ylecun/mnist"``) or from local files.

    Local files go through the same ``datasets.load_dataset`` call as hub names, with a
    builder as ``path`` (``"parquet"``, ``"csv"``) and ``data_files``. Without a test
    split, ``test_fraction`` of the training split is held out.

    flwr-datasets' ``FederatedDataset`` would add nothing here: it calls the same
    ``load_dataset`` and hands the split to a partitioner, which ``build_partitioner``
    does for every dataset, hub or not.

    ``mean`` and ``std`` normalize each channel after ``feature_scale``; ``augment``
    adds random crops (4 pixels) and horizontal flips to training batches of images.
    The settings and their defaults are those of ``conf/dataset/huggingface.yaml``.
    """
    check_test_fraction(test_fraction)
    check_normalization(mean, std)
    _check_local_files(data_files)
    try:
        splits = datasets.load_dataset(path, name=name, data_files=data_files)
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as error:
        raise ConfigError(f"dataset.path: could not load '{path}' ({error}).") from error
    if train_split not in splits:
        raise ConfigError(
            f"dataset.train_split: '{path}' has no split '{train_split}'; it has {sorted(splits)}."
        )
    has_test_split = test_split is not None and test_split in splits
    loaded = [train_split, test_split] if has_test_split else [train_split]
    wanted = [*feature_columns, label_column] + ([natural_id_column] if natural_id_column else [])
    label_feature = splits[train_split].features.get(label_column)
    declared = label_feature.num_classes if isinstance(label_feature, datasets.ClassLabel) else None
    largest_label = -1
    # Checked before any training reads a batch: a string or out-of-range label would
    # otherwise fail deep inside the loss, or be cast to an integer without a word.
    for split in loaded:
        source = _describe_split(path, data_files, split)
        missing = [column for column in wanted if column not in splits[split].column_names]
        if missing:
            raise ConfigError(
                f"dataset: column(s) {missing} not in {source}; its columns are {splits[split].column_names}."
            )
        check_feature_columns(splits[split], list(feature_columns), source)
        largest_label = max(largest_label, check_label_column(splits[split], label_column, declared, source))
    num_classes = declared if declared is not None else largest_label + 1

    train = splits[train_split]
    if has_test_split:
        test = splits[test_split]
    else:
        parts = train.train_test_split(test_size=test_fraction, seed=seed)
        train, test = parts["train"], parts["test"]
    first = features_array(train.with_format("numpy")[:1], list(feature_columns))[0]
    input_shape = infer_input_shape(first)
    if mean is not None and len(mean) not in (1, input_shape[0]):
        raise ConfigError(
            f"dataset.mean: give one value or one per channel ({input_shape[0]} for input shape "
            f"{input_shape}), not {len(mean)}."
        )
    if augment and len(input_shape) != 3:
        raise ConfigError(f"dataset.augment: random crops and flips need images, not input shape {input_shape}.")
    return FederatedData(
        train=train,
        test=test,
        feature_columns=list(feature_columns),
        label_column=label_column,
        input_shape=input_shape,
        num_classes=num_classes,
        feature_scale=feature_scale,
        natural_id_column=natural_id_column,
        mean=None if mean is None else tuple(mean),
        std=None if std is None else tuple(std),
        augmentation=RandomCropFlip() if augment else None,
    )


def _describe_split(path: str, data_files: str | list | dict | None, split: str) -> str:
    """How messages name one split of a dataset: its local file(s) when given, else the dataset and split."""
    files = data_files.get(split) if isinstance(data_files, dict) else data_files
    if files is None:
        return f"'{path}' (split '{split}')"
    return f"'{files}'" if isinstance(files, str) else str(list(files))


def _check_local_files(data_files: str | list | dict | None) -> None:
    if data_files is None:
        return
    if isinstance(data_files, dict):
        paths = [p for value in data_files.values() for p in ([value] if isinstance(value, str) else value)]
    else:
        paths = [data_files] if isinstance(data_files, str) else list(data_files)
    for path in paths:
        if "://" in path or any(ch in path for ch in "*?["):
            continue
        if not Path(path).is_file():
            raise ConfigError(f"dataset.data_files: no file at '{path}'.")
