"""Bad data gets one sentence before any training: labels that are not class ids, features that are
not numbers, a truncated Fashion-MNIST file, a heatmap file fedsim-data cannot write."""

import gzip
import subprocess
import sys

import datasets
import numpy as np
import pytest

from fedsim.config import ConfigError
from fedsim.data.fashion_mnist import IDX_FILES
from fedsim.instantiate import build
from tests.conftest import compose_config
from tests.data.test_fashion_mnist import write_idx

FEATURES = np.arange(24, dtype=np.float32).reshape(6, 4)


def write_parquet(path, labels, features=FEATURES, schema: datasets.Features | None = None) -> str:
    """Six examples with a feature column ``x`` and a ``label`` column, as a parquet file."""
    datasets.Dataset.from_dict({"x": features, "label": labels}, features=schema).to_parquet(path)
    return str(path)


def parquet_overrides(**files: str) -> list[str]:
    """``fedsim`` overrides reading the local parquet ``files`` (split name: file) as dataset=huggingface."""
    data_files = "{" + ",".join(f"{split}:'{path}'" for split, path in files.items()) + "}"
    return ["dataset=huggingface", "dataset.path=parquet", f"dataset.data_files={data_files}",
            "dataset.feature_columns=[x]", "dataset.feature_scale=1", "model=logreg"]


def load_error(*overrides: str) -> str:
    """The ConfigError message that loading the dataset of ``overrides`` raises."""
    with pytest.raises(ConfigError) as raised:
        build(compose_config(*overrides).dataset)
    return str(raised.value)


def test_string_labels_stop_the_command_with_one_sentence_and_exit_2(tmp_path):
    train = write_parquet(tmp_path / "train.parquet", ["cat", "dog"] * 3)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "fedsim.cli", *parquet_overrides(train=train), "num_clients=2",
               "num_rounds=1", "client.local_epochs=1", "partitioner=iid", f"hydra.run.dir={run_dir}"]
    result = subprocess.run(command, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"fedsim: error: dataset.label_column: column 'label' of '{train}' holds string values; "
        "class labels must be integers of at least 0."
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert not (run_dir / "metrics.csv").exists()


def test_a_negative_label_is_a_config_error(tmp_path):
    train = write_parquet(tmp_path / "train.parquet", [0, 1, 2, -2, 1, 0])
    assert load_error(*parquet_overrides(train=train)) == (
        f"dataset.label_column: column 'label' of '{train}' holds the label -2; "
        "class labels must be integers of at least 0."
    )


def test_fractional_labels_are_a_config_error_not_silently_truncated(tmp_path):
    train = write_parquet(tmp_path / "train.parquet", [0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    message = load_error(*parquet_overrides(train=train))
    assert message == (
        f"dataset.label_column: column 'label' of '{train}' holds double values; "
        "class labels must be integers of at least 0."
    )


def test_a_label_not_below_the_class_labels_number_of_classes_is_a_config_error(tmp_path):
    three_classes = datasets.Features(
        {"x": datasets.Sequence(datasets.Value("float32")), "label": datasets.ClassLabel(num_classes=3)}
    )
    train = write_parquet(tmp_path / "train.parquet", [0, 1, 2, 0, 1, 2], schema=three_classes)
    test = write_parquet(tmp_path / "test.parquet", [0, 1, 2, 3, 1, 2])  # read with the train file's ClassLabel
    assert load_error(*parquet_overrides(train=train, test=test)) == (
        f"dataset.label_column: column 'label' of '{test}' holds the label 3; "
        "class labels must be integers from 0 to 2 (3 classes)."
    )


def test_an_unlabelled_test_split_is_named_as_such(tmp_path):
    three_classes = datasets.Features(
        {"x": datasets.Sequence(datasets.Value("float32")), "label": datasets.ClassLabel(num_classes=3)}
    )
    train = write_parquet(tmp_path / "train.parquet", [0, 1, 2, 0, 1, 2], schema=three_classes)
    test = write_parquet(tmp_path / "test.parquet", [-1] * 6, schema=three_classes)  # the hub's "no label"
    assert load_error(*parquet_overrides(train=train, test=test)) == (
        f"dataset.label_column: column 'label' of '{test}' holds the label -1 (-1 marks an unlabelled example); "
        "class labels must be integers from 0 to 2 (3 classes)."
    )


def test_a_text_feature_column_is_a_config_error(tmp_path):
    train = write_parquet(tmp_path / "train.parquet", [0, 1, 2, 0, 1, 2], features=[f"word{i}" for i in range(6)])
    assert load_error(*parquet_overrides(train=train)) == (
        f"dataset.feature_columns: column 'x' of '{train}' holds string values; "
        "features must be numbers, lists or arrays of numbers, or images."
    )


@pytest.fixture
def fashion_folder(tmp_path):
    """Tiny IDX files named as in the Debian package: 4 training and 2 test images of 28x28."""
    rng = np.random.default_rng(0)
    for split, (images_name, labels_name) in IDX_FILES.items():
        count = 4 if split == "train" else 2
        write_idx(tmp_path / images_name, rng.integers(0, 256, size=(count, 28, 28)))
        write_idx(tmp_path / labels_name, rng.integers(0, 10, size=count))
    return tmp_path


def test_a_truncated_fashion_mnist_file_is_a_config_error(fashion_folder):
    images = fashion_folder / IDX_FILES["train"][0]
    whole = images.read_bytes()
    images.write_bytes(whole[: len(whole) // 2])  # a download or copy cut short
    message = load_error("dataset=fashion_mnist", f"dataset.directory={fashion_folder}")
    assert message.startswith(f"dataset.directory: '{images}' is not a complete gzip file (")
    assert message.endswith(
        "reinstall the Debian package dataset-fashion-mnist (apt-get install --reinstall dataset-fashion-mnist) "
        "or point dataset.directory at a complete copy."
    )


def test_a_fashion_mnist_file_shorter_than_its_header_is_a_config_error(fashion_folder):
    labels = fashion_folder / IDX_FILES["test"][1]
    with gzip.open(labels, "rb") as file:
        whole = file.read()
    with gzip.open(labels, "wb") as file:  # a valid gzip stream holding one label of the two announced
        file.write(whole[:-1])
    message = load_error("dataset=fashion_mnist", f"dataset.directory={fashion_folder}")
    assert message.startswith(
        f"dataset.directory: '{labels}' has 1 bytes of data, not the 2 its header announces (shape (2,)); "
    )


@pytest.mark.parametrize("output", ["heatmap.txt", "heatmap"])
def test_fedsim_data_refuses_an_output_suffix_before_loading_anything(tmp_path, capsys, monkeypatch, output):
    from fedsim.data import report

    def partition_counts(cfg):
        raise AssertionError("the dataset was loaded before --output was checked")

    monkeypatch.setattr(report, "partition_counts", partition_counts)
    with pytest.raises(SystemExit) as exited:
        report.main(["--output", str(tmp_path / output)])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"fedsim-data: error: --output must end in .png, .pdf, .svg (got '{tmp_path / output}').\n"
    )
    assert not list(tmp_path.iterdir())
