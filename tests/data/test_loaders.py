"""Tests for the dataset loaders: digits, Hugging Face (local files and hub), synthetic."""

import io
import math

import datasets
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from tests.conftest import compose_config
from PIL import Image
from sklearn.datasets import load_digits as sklearn_digits

import fedsim.data.loaders as loaders
from fedsim.config import ConfigError
from fedsim.data import FederatedData, load_digits, load_huggingface, load_synthetic
from fedsim.data.synthetic import generate_synthetic
from fedsim.instantiate import build
from tests.option_files import option_settings


@pytest.fixture(autouse=True)
def private_hf_cache(tmp_path, monkeypatch):
    """Keep the datasets cache of every load inside the test's temporary folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


@pytest.fixture(scope="module")
def sklearn_bunch():
    return sklearn_digits()


def sorted_rows(a: np.ndarray) -> np.ndarray:
    """Rows of a 2-D array in lexicographic order (a multiset fingerprint)."""
    return a[np.lexsort(a.T[::-1])]


def hub(path: str, **settings) -> FederatedData:
    """load_huggingface with the settings of conf/dataset/huggingface.yaml, ``path`` and ``settings`` replaced."""
    return load_huggingface(**option_settings("dataset", "huggingface", path=path, **settings))


def png_pixels(parquet_file: str) -> np.ndarray:
    """Decode the PNG bytes of the image column of a parquet file, without `datasets`."""
    table = pq.read_table(parquet_file, columns=["image"])
    return np.stack([np.asarray(Image.open(io.BytesIO(cell["bytes"]))) for cell in table.column("image").to_pylist()])


# --- load_digits -----------------------------------------------------------------------------


def test_digits_has_1797_examples_and_the_requested_test_split():
    data = load_digits(test_fraction=0.2, seed=0)
    assert len(data.train) + len(data.test) == 1797
    assert len(data.test) == math.ceil(0.2 * 1797) == 360
    assert data.input_shape == (1, 8, 8)
    assert data.num_classes == 10
    assert data.natural_id_column is None


@pytest.mark.parametrize("test_fraction", [0.1, 0.5])
def test_digits_test_split_follows_test_fraction(test_fraction):
    data = load_digits(test_fraction=test_fraction, seed=0)
    assert len(data.test) == math.ceil(test_fraction * 1797)
    assert len(data.train) == 1797 - len(data.test)


def test_digits_features_are_sklearn_images_over_16(sklearn_bunch):
    data = load_digits(test_fraction=0.2, seed=0)
    x_train, y_train = data.to_tensors(data.train)
    x_test, y_test = data.to_tensors(data.test)
    assert x_train.shape == (len(data.train), 1, 8, 8)
    assert str(x_train.dtype) == "torch.float32" and str(y_train.dtype) == "torch.int64"
    x = np.concatenate([x_train.numpy(), x_test.numpy()]).reshape(1797, 64)
    y = np.concatenate([y_train.numpy(), y_test.numpy()])
    assert x.min() == 0.0 and x.max() == 1.0
    # every (image, label) pair of sklearn appears exactly once across the two splits
    expected = np.column_stack([sklearn_bunch.images.reshape(1797, 64) / 16.0, sklearn_bunch.target])
    got = np.column_stack([x.astype(np.float64), y])
    np.testing.assert_array_equal(sorted_rows(got), sorted_rows(expected))


def test_digits_file_read_directly_equals_sklearns_loader(sklearn_bunch, monkeypatch):
    pixels, labels = loaders.read_sklearn_digits()
    np.testing.assert_array_equal(pixels, sklearn_bunch.data)
    np.testing.assert_array_equal(labels, sklearn_bunch.target)
    # without the bundled file, scikit-learn's own loader gives the same arrays
    monkeypatch.setattr(loaders.Path, "is_file", lambda self: False)
    fallback_pixels, fallback_labels = loaders.read_sklearn_digits()
    np.testing.assert_array_equal(fallback_pixels, sklearn_bunch.data)
    np.testing.assert_array_equal(fallback_labels, sklearn_bunch.target)


def test_digits_same_seed_same_split_other_seed_other_split():
    a, b, c = (load_digits(test_fraction=0.2, seed=seed) for seed in (1, 1, 2))
    xa, xb, xc = (d.to_tensors(d.test)[0].numpy() for d in (a, b, c))
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(a.to_tensors(a.train)[1].numpy(), b.to_tensors(b.train)[1].numpy())
    assert xa.shape == xc.shape
    assert not np.array_equal(sorted_rows(xa.reshape(len(xa), -1)), sorted_rows(xc.reshape(len(xc), -1)))


# --- load_huggingface on local files ---------------------------------------------------------


def test_local_parquet_with_mnist_schema(digits_parquet, sklearn_bunch):
    data = hub("parquet", data_files=digits_parquet, feature_scale=255.0, test_fraction=0.5)
    assert data.input_shape == (1, 8, 8)
    assert data.num_classes == 10  # from the ClassLabel, not the labels seen
    # the files' own splits; test_fraction only applies without a test split
    assert (len(data.train), len(data.test)) == (1500, 297)
    assert data.feature_columns == ["image"] and data.label_column == "label"

    for split, file, rows in ((data.train, digits_parquet["train"], slice(0, 1500)),
                              (data.test, digits_parquet["test"], slice(1500, None))):
        x, y = data.to_tensors(split)
        pixels = png_pixels(file)  # uint8, decoded independently of fedsim and datasets
        assert pixels.shape == (len(split), 8, 8)
        np.testing.assert_allclose(x.numpy()[:, 0], pixels / 255.0, rtol=0, atol=1e-7)
        # and the pixels are the 8-bit rendering of sklearn's digits
        np.testing.assert_array_equal(pixels, (sklearn_bunch.images[rows] * 255 / 16).astype(np.uint8))
        np.testing.assert_array_equal(y.numpy(), sklearn_bunch.target[rows])


@pytest.fixture(scope="module")
def tiny_parquet(tmp_path_factory) -> dict[str, str]:
    """Six 4x4 grey images with labels 0..2 of a 10-class ClassLabel, as train and test files."""
    folder = tmp_path_factory.mktemp("tiny")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    images = [Image.fromarray(np.full((4, 4), 40 * i, dtype=np.uint8)) for i in range(6)]
    ds = datasets.Dataset.from_dict({"image": images, "label": [0, 1, 2, 0, 1, 2]}, features=features)
    files = {split: str(folder / f"{split}.parquet") for split in ("train", "test")}
    for file in files.values():
        ds.to_parquet(file)
    return files


def test_classlabel_decides_num_classes_even_when_labels_are_fewer(tiny_parquet):
    data = hub("parquet", data_files={"train": tiny_parquet["train"]}, test_fraction=0.5)
    assert data.num_classes == 10
    assert data.input_shape == (1, 4, 4)
    assert (len(data.train), len(data.test)) == (3, 3)


CSV_ROWS = 300


@pytest.fixture
def digits_csv(tmp_path, sklearn_bunch) -> str:
    """The first 300 digits as a csv: integer pixel columns f0..f63 and a label column."""
    frame = pd.DataFrame(sklearn_bunch.data[:CSV_ROWS].astype(np.int64), columns=[f"f{i}" for i in range(64)])
    frame["label"] = sklearn_bunch.target[:CSV_ROWS]
    path = tmp_path / "digits.csv"
    frame.to_csv(path, index=False)
    return str(path)


def test_csv_with_scalar_feature_columns(digits_csv, sklearn_bunch):
    columns = [f"f{i}" for i in range(64)]
    data = hub("csv", data_files=digits_csv, feature_columns=columns, feature_scale=16.0,
                            test_fraction=0.25, seed=0)
    assert data.input_shape == (64,)
    assert data.num_classes == 10  # no ClassLabel: the largest label + 1
    # no test split in a single file: test_fraction of the rows is held out
    assert len(data.test) == math.ceil(0.25 * CSV_ROWS) == 75
    assert len(data.train) == CSV_ROWS - len(data.test)
    x_train, y_train = data.to_tensors(data.train)
    x_test, y_test = data.to_tensors(data.test)
    assert x_train.shape == (len(data.train), 64)
    got = np.column_stack([np.concatenate([x_train, x_test]).astype(np.float64), np.concatenate([y_train, y_test])])
    expected = np.column_stack([sklearn_bunch.data[:CSV_ROWS] / 16.0, sklearn_bunch.target[:CSV_ROWS]])
    np.testing.assert_array_equal(sorted_rows(got), sorted_rows(expected))


@pytest.mark.parametrize("test_split", ["test", None])
def test_missing_test_split_holds_out_test_fraction(digits_parquet, test_split):
    data = hub("parquet", data_files={"train": digits_parquet["train"]}, test_split=test_split,
                            test_fraction=0.3, feature_scale=255.0, seed=0)
    assert len(data.test) == math.ceil(0.3 * 1500)
    assert len(data.train) == 1500 - len(data.test)
    x_train = data.to_tensors(data.train)[0].numpy().reshape(len(data.train), -1)
    x_test = data.to_tensors(data.test)[0].numpy().reshape(len(data.test), -1)
    pixels = png_pixels(digits_parquet["train"]).reshape(1500, -1) / np.float32(255)
    np.testing.assert_array_equal(sorted_rows(np.concatenate([x_train, x_test])), sorted_rows(pixels))


def test_holdout_split_depends_on_seed(digits_parquet):
    def held_out(seed):
        data = hub("parquet", data_files={"train": digits_parquet["train"]}, seed=seed)
        return data.to_tensors(data.test)[1].numpy()

    np.testing.assert_array_equal(held_out(0), held_out(0))
    assert not np.array_equal(held_out(0), held_out(1))


def test_missing_local_file_is_a_config_error_naming_data_files(tmp_path, tiny_parquet):
    missing = str(tmp_path / "nowhere" / "train.parquet")
    with pytest.raises(ConfigError) as info:
        hub("parquet", data_files={"train": missing, "test": tiny_parquet["test"]})
    assert "dataset.data_files" in str(info.value)
    assert missing in str(info.value)
    with pytest.raises(ConfigError, match="dataset.data_files"):
        hub("parquet", data_files=[missing])


def test_missing_feature_column_is_a_config_error_listing_the_columns(tiny_parquet):
    with pytest.raises(ConfigError) as info:
        hub("parquet", data_files=tiny_parquet, feature_columns=["pixels"])
    message = str(info.value)
    assert "pixels" in message
    assert "'image'" in message and "'label'" in message


def test_missing_label_column_is_a_config_error(tiny_parquet):
    with pytest.raises(ConfigError, match="digit"):
        hub("parquet", data_files=tiny_parquet, label_column="digit")


def test_missing_train_split_is_a_config_error(tiny_parquet):
    with pytest.raises(ConfigError, match="dataset.train_split"):
        hub("parquet", data_files=tiny_parquet, train_split="training")


def test_colour_images_become_channels_first_without_scrambling(tmp_path):
    rng = np.random.default_rng(0)
    arrays = rng.integers(0, 256, size=(6, 4, 5, 3), dtype=np.uint8)  # HWC, as PIL gives them
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=2)})
    ds = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a) for a in arrays], "label": [0, 1] * 3}, features=features
    )
    ds.to_parquet(tmp_path / "rgb.parquet")
    file = str(tmp_path / "rgb.parquet")
    data = hub("parquet", data_files={"train": file, "test": file}, feature_scale=255.0)
    assert data.input_shape == (3, 4, 5)
    x, _ = data.to_tensors(data.test)
    # channel c of image i is arrays[i, :, :, c]
    np.testing.assert_allclose(x.numpy(), arrays.transpose(0, 3, 1, 2) / 255.0, rtol=0, atol=1e-7)


# --- load_huggingface from the hub (load_dataset replaced) ------------------------------------


def fake_mnist() -> datasets.DatasetDict:
    """A tiny DatasetDict with the schema of ylecun/mnist: 28x28 grey images and a ClassLabel."""
    rng = np.random.default_rng(0)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])}
    )

    def split(n):
        pixels = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n)
        ds = datasets.Dataset.from_dict({"image": [Image.fromarray(p) for p in pixels], "label": labels},
                                        features=features)
        return ds, pixels, labels

    train, train_pixels, train_labels = split(12)
    test, test_pixels, test_labels = split(5)
    return datasets.DatasetDict({"train": train, "test": test}), (train_pixels, train_labels, test_pixels, test_labels)


def test_hub_name_goes_through_load_dataset(monkeypatch):
    splits, (train_pixels, train_labels, test_pixels, test_labels) = fake_mnist()
    calls = []

    def fake_load_dataset(path, *args, **kwargs):
        calls.append((path, args, kwargs))
        return splits

    monkeypatch.setattr(loaders.datasets, "load_dataset", fake_load_dataset)
    # the shipped huggingface option, exactly as `fedsim dataset=huggingface` composes it
    cfg = compose_config("dataset=huggingface", tiny=False)
    data = build(cfg.dataset)

    assert len(calls) == 1
    path, args, kwargs = calls[0]
    assert path == "ylecun/mnist"
    assert kwargs.get("data_files") is None and kwargs.get("name") is None
    assert data.input_shape == (1, 28, 28)
    assert data.num_classes == 10
    x_train, y_train = data.to_tensors(data.train)
    x_test, y_test = data.to_tensors(data.test)
    np.testing.assert_allclose(x_train.numpy()[:, 0], train_pixels / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_allclose(x_test.numpy()[:, 0], test_pixels / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(y_train.numpy(), train_labels)
    np.testing.assert_array_equal(y_test.numpy(), test_labels)


def test_hub_load_failure_is_a_config_error_naming_the_path(monkeypatch):
    def offline(path, *args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(loaders.datasets, "load_dataset", offline)
    with pytest.raises(ConfigError) as info:
        hub("ylecun/mnist")
    assert "dataset.path" in str(info.value) and "ylecun/mnist" in str(info.value)


def test_local_parquet_through_the_config(digits_parquet):
    train, test = digits_parquet["train"], digits_parquet["test"]
    cfg = compose_config(
        "dataset=huggingface", "dataset.path=parquet", f"dataset.data_files={{train:'{train}',test:'{test}'}}",
        tiny=False,
    )
    data = build(cfg.dataset)
    assert data.input_shape == (1, 8, 8)
    assert (len(data.train), len(data.test)) == (1500, 297)
    x, _ = data.to_tensors(data.test)
    np.testing.assert_allclose(x.numpy()[:, 0], png_pixels(test) / 255.0, rtol=0, atol=1e-7)


# --- load_synthetic -------------------------------------------------------------------------


@pytest.mark.parametrize("test_fraction", [0.1, 0.3])
def test_synthetic_holds_out_the_last_test_fraction_of_each_user(test_fraction):
    num_users, seed = 6, 3
    data = load_synthetic(alpha=0.5, beta=0.5, iid=False, num_users=num_users, test_fraction=test_fraction, seed=seed)
    raw = generate_synthetic(0.5, 0.5, num_users=num_users, seed=seed)
    assert data.natural_id_column == "user"
    assert data.input_shape == (60,) and data.num_classes == 10
    assert len(data.train) + len(data.test) == len(raw.y)

    train_user = np.asarray(data.train["user"])
    test_user = np.asarray(data.test["user"])
    x_train, y_train = data.to_tensors(data.train)
    x_test, y_test = data.to_tensors(data.test)
    for user in range(num_users):
        rows = np.flatnonzero(raw.user == user)
        n_test = (test_user == user).sum()
        n_train = (train_user == user).sum()
        assert n_test + n_train == len(rows)
        # about test_fraction held out (rounding to whole examples, at least one)
        assert abs(n_test - test_fraction * len(rows)) <= 0.5 + 1e-9
        assert n_test >= 1
        # the held-out rows are the user's last ones, the rest train
        np.testing.assert_array_equal(x_test.numpy()[test_user == user], raw.x[rows[len(rows) - n_test:]])
        np.testing.assert_array_equal(y_test.numpy()[test_user == user], raw.y[rows[len(rows) - n_test:]])
        np.testing.assert_array_equal(x_train.numpy()[train_user == user], raw.x[rows[: len(rows) - n_test]])
        np.testing.assert_array_equal(y_train.numpy()[train_user == user], raw.y[rows[: len(rows) - n_test]])
        # disjoint: no training row of this user is also a test row
        train_rows = {r.tobytes() for r in x_train.numpy()[train_user == user]}
        assert not any(r.tobytes() in train_rows for r in x_test.numpy()[test_user == user])


def test_synthetic_through_the_config():
    cfg = compose_config("dataset=synthetic", "dataset.num_users=4", "seed=5", tiny=False)
    data = build(cfg.dataset)
    raw = generate_synthetic(0.0, 0.0, num_users=4, seed=5)
    assert sorted(set(data.train["user"])) == [0, 1, 2, 3]
    assert len(data.train) + len(data.test) == len(raw.y)


# --- FederatedData.to_tensors: token ids and normalization ----------------------------------


def test_token_ids_pass_through_unscaled_as_int64():
    from fedsim.data import FederatedData

    split = datasets.Dataset.from_dict({"x": np.array([[3, 79, 0], [1, 2, 3]], dtype=np.uint8), "label": [5, 6]})
    data = FederatedData(split, split, ["x"], "label", (3,), 80, feature_scale=255.0, input_dtype="int64")
    x, y = data.to_tensors(split)
    assert str(x.dtype) == "torch.int64"
    assert x.tolist() == [[3, 79, 0], [1, 2, 3]] and y.tolist() == [5, 6]


def test_normalization_is_per_channel_after_scaling():
    from fedsim.data import FederatedData

    pixels = np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3)  # HWC
    split = datasets.Dataset.from_dict({"x": pixels, "label": [0, 1]})
    data = FederatedData(split, split, ["x"], "label", (3, 2, 2), 2, feature_scale=10.0,
                         mean=(0.1, 0.2, 0.3), std=(0.5, 1.0, 2.0))
    x, _ = data.to_tensors(split)
    for channel, (mean, std) in enumerate([(0.1, 0.5), (0.2, 1.0), (0.3, 2.0)]):
        np.testing.assert_allclose(x[:, channel].numpy(), (pixels[..., channel] / 10.0 - mean) / std, rtol=1e-6)


def test_tensors_are_made_by_a_datasets_transform_without_rewriting_the_split():
    from fedsim.data import FederatedData

    raw = np.array([[0, 8], [16, 4], [2, 6]], dtype=np.uint8)
    split = datasets.Dataset.from_dict({"x": raw, "label": [2, 0, 1]})
    table, fingerprint = split.data, split._fingerprint
    data = FederatedData(split, split, ["x"], "label", (2,), 3, feature_scale=16.0, mean=(0.5,), std=(0.25,))

    x, y = data.to_tensors(split)
    expected = (raw / 16.0 - 0.5) / 0.25
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6)
    assert y.tolist() == [2, 0, 1]
    # the same transform, read lazily row by row through datasets, gives the same tensors
    lazy = split.with_transform(data.transform)
    np.testing.assert_allclose(lazy[[2, 0]]["inputs"].numpy(), expected[[2, 0]], rtol=1e-6)
    # the stored split is untouched: same Arrow table, no format set, no cache files
    assert split.data is table and split._fingerprint == fingerprint
    assert split.format["type"] is None and split.cache_files == []
