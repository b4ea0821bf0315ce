"""Tests for the hub dataset options (mnist, cifar10, femnist) on local files of the same schema,
their normalization and augmentation, and their bad input."""

import numpy as np
import pytest
import torch

from fedsim.config import ConfigError
from fedsim.data import RandomCropFlip
from fedsim.instantiate import build
from fedsim.models import build_model
from fedsim.plan import build_plan, check_options, load_federation
from tests.conftest import compose_config
from tests.data.hub_schemas import write_cifar10_parquet, write_femnist_parquet


def local(files: dict[str, str]) -> list[str]:
    """Overrides pointing a hub option at local parquet files."""
    return ["dataset.path=parquet", "dataset.data_files={" + ",".join(f"{k}:'{v}'" for k, v in files.items()) + "}"]


def test_mnist_option_names_the_hub_dataset_and_reads_its_schema(digits_parquet):
    assert compose_config("dataset=mnist").dataset.path == "ylecun/mnist"
    cfg = compose_config("dataset=mnist", "model=cnn", *local(digits_parquet))
    federation = load_federation(cfg)
    assert federation.data.input_shape == (1, 8, 8) and federation.data.num_classes == 10
    build_model(cfg.model, federation.data.input_shape, federation.data.num_classes, cfg.seed)


def test_cifar10_is_normalized_per_channel(tmp_path):
    files = write_cifar10_parquet(tmp_path)
    hub = compose_config("dataset=cifar10").dataset
    assert hub.path == "uoft-cs/cifar10" and list(hub.feature_columns) == ["img"]
    cfg = compose_config("dataset=cifar10", "model=resnet18", *local(files))
    check_options(cfg)
    data = build(cfg.dataset)
    assert data.input_shape == (3, 32, 32) and data.augmentation is None
    x, _ = data.to_tensors(data.test)
    pixels = png_pixels_rgb(files["test"])  # (N, 32, 32, 3) uint8, decoded without datasets
    mean, std = np.array(cfg.dataset.mean), np.array(cfg.dataset.std)
    expected = ((pixels / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-5)
    model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed)
    assert model(x[:2]).shape == (2, 10)


def png_pixels_rgb(parquet_file: str) -> np.ndarray:
    import io

    import pyarrow.parquet as pq
    from PIL import Image

    cells = pq.read_table(parquet_file, columns=["img"]).column("img").to_pylist()
    return np.stack([np.asarray(Image.open(io.BytesIO(cell["bytes"]))) for cell in cells])


def test_cifar10_augmentation_is_random_crop_and_flip(tmp_path):
    files = write_cifar10_parquet(tmp_path)
    data = build(compose_config("dataset=cifar10", "dataset.augment=true", *local(files)).dataset)
    assert data.augmentation == RandomCropFlip(padding=4)


def test_mean_without_std_is_a_config_error():
    with pytest.raises(ConfigError, match="dataset.mean and dataset.std go together"):
        build_plan(compose_config("dataset=cifar10", "dataset.std=null"))


def test_mean_with_the_wrong_number_of_channels_is_a_config_error(digits_parquet):
    cfg = compose_config("dataset=mnist", *local(digits_parquet), "dataset.mean=[0.5,0.5,0.5]", "dataset.std=[1,1,1]")
    with pytest.raises(ConfigError, match=r"dataset.mean: give one value or one per channel \(1"):
        build(cfg.dataset)


def test_femnist_gives_one_client_per_writer(tmp_path):
    files = write_femnist_parquet(tmp_path, num_writers=6, per_writer=8)
    cfg = compose_config("dataset=femnist", "model=cnn", "partitioner=natural", "num_clients=6", *local(files))
    federation = load_federation(cfg)
    data = federation.data
    assert data.num_classes == 62 and data.input_shape == (1, 28, 28) and data.natural_id_column == "writer_id"
    # no test split on the hub: 10% of the 48 images held out, the rest split by writer
    assert len(data.test) == 5 and len(data.train) == 43
    writers = [set(federation.partitioner.load_partition(i)["writer_id"]) for i in range(6)]
    assert all(len(w) == 1 for w in writers) and len(set().union(*writers)) == 6
    # every writer's 8 images are in its client or in the held-out test split
    for (writer,) in writers:
        assert data.train["writer_id"].count(writer) + data.test["writer_id"].count(writer) == 8


def test_natural_id_column_that_does_not_exist_is_a_config_error(tmp_path):
    files = write_femnist_parquet(tmp_path)
    cfg = compose_config("dataset=femnist", "dataset.natural_id_column=author", *local(files))
    with pytest.raises(ConfigError) as raised:
        build(cfg.dataset)
    assert "'author'" in str(raised.value) and "'writer_id'" in str(raised.value)


def test_more_clients_than_examples_is_a_config_error(tmp_path):
    files = write_cifar10_parquet(tmp_path, num_train=12)
    cfg = compose_config("dataset=cifar10", "partitioner=iid", "num_clients=13", "clients_per_round=1", *local(files))
    with pytest.raises(ConfigError, match="num_clients=13 is more than the 12 training examples"):
        load_federation(cfg)


def test_hub_option_offline_names_the_dataset(monkeypatch):
    import fedsim.data.loaders as loaders

    def offline(path, *args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(loaders.datasets, "load_dataset", offline)
    with pytest.raises(ConfigError, match="dataset.path: could not load 'flwrlabs/femnist'"):
        build(compose_config("dataset=femnist").dataset)


# --- RandomCropFlip -----------------------------------------------------------------------


def crop_flip_by_loops(images, padding, tops, lefts, flips):
    """The augmentation written out image by image, as an independent reference."""
    out = torch.empty_like(images)
    for i, image in enumerate(images):
        padded = torch.nn.functional.pad(image, (padding,) * 4)
        height, width = image.shape[1:]
        crop = padded[:, tops[i] : tops[i] + height, lefts[i] : lefts[i] + width]
        out[i] = crop.flip(2) if flips[i] else crop
    return out


def test_random_crop_flip_matches_the_loop_with_the_same_draws():
    images = torch.randn(16, 3, 6, 5)
    augmented = RandomCropFlip(padding=2)(images, torch.Generator().manual_seed(3))
    draws = torch.Generator().manual_seed(3)
    tops = torch.randint(0, 5, (16,), generator=draws)
    lefts = torch.randint(0, 5, (16,), generator=draws)
    flips = torch.rand(16, generator=draws) < 0.5
    assert 0 < flips.sum() < 16  # both branches are exercised
    torch.testing.assert_close(augmented, crop_flip_by_loops(images, 2, tops, lefts, flips))


def test_random_crop_flip_without_padding_only_flips():
    images = torch.randn(32, 1, 4, 4)
    augmented = RandomCropFlip(padding=0)(images, torch.Generator().manual_seed(0))
    for original, out in zip(images, augmented):
        assert torch.equal(out, original) or torch.equal(out, original.flip(2))


@pytest.mark.parametrize("privacy", ["none", "local_dp"])
def test_augmentation_reaches_training_and_stays_reproducible(tmp_path, privacy):
    from fedsim.results import load
    from fedsim.runner import run

    files = write_cifar10_parquet(tmp_path, num_train=16, num_test=4)
    base = ["dataset=cifar10", "model=cnn", "num_clients=2", "clients_per_round=2", "eval_clients_per_round=0",
            "num_rounds=1", "partitioner=iid", f"privacy={privacy}", *local(files)]
    if privacy == "local_dp":
        base.append("privacy.noise_multiplier=1.0")

    def train_losses(augment: str, name: str) -> list[float]:
        cfg = compose_config(*base, f"dataset.augment={augment}")
        frame = load(run(cfg, tmp_path / name, choices={}, quiet=True).run_dir)
        per_client = frame[(frame["stage"] == "train") & (frame["metric"] == "loss") & frame["client"].notna()]
        return per_client.sort_values("client")["value"].tolist()

    augmented, again, plain = train_losses("true", "a"), train_losses("true", "b"), train_losses("false", "c")
    assert len(augmented) == 2 and augmented == again
    assert augmented != plain
