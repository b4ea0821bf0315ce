"""Tests for build_partitioner over every shipped partitioner option, QuantitySkewPartitioner and Federation."""

import copy
import dataclasses
import functools
import re
import warnings
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from flwr_datasets.partitioner import Partitioner

import fedsim.conf
from fedsim.config import ConfigError
from fedsim.data import FederatedData, Federation, QuantitySkewPartitioner, build_partitioner, load_digits
from fedsim.data import load_synthetic
from fedsim.data.partitioners import partition_rows as kept_rows
from fedsim.privacy.local import train_sizes
from tests.conftest import compose_config
from tests.option_files import option_settings

PARTITIONER_OPTIONS = sorted(p.stem for p in (Path(fedsim.conf.__path__[0]) / "partitioner").glob("*.yaml"))
NUM_CLIENTS = 5


@pytest.fixture(autouse=True)
def quiet_flwr_warnings():
    # PathologicalPartitioner warns about unused classes; the assertions below cover it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def with_row_ids(data: FederatedData) -> FederatedData:
    """The same data with a ``row`` column numbering the training examples 0..n-1."""
    return dataclasses.replace(data, train=data.train.add_column("row", list(range(len(data.train)))))


@pytest.fixture(scope="module")
def digits() -> FederatedData:
    return with_row_ids(load_digits(test_fraction=0.2, seed=0))


@pytest.fixture(scope="module")
def synthetic() -> FederatedData:
    return with_row_ids(load_synthetic(**option_settings("dataset", "synthetic", num_users=NUM_CLIENTS)))


@functools.lru_cache(maxsize=None)
def composed(*overrides: str):
    """compose_config, once per distinct override list (composing costs ~0.1 s; nothing mutates it)."""
    return compose_config(*overrides, tiny=False)


def partition(name: str, data: FederatedData, *overrides: str, num_clients: int = NUM_CLIENTS, seed: int = 0):
    cfg = copy.deepcopy(composed(f"partitioner={name}", f"num_clients={num_clients}", *overrides))
    cfg.seed = seed  # what the override seed=SEED sets; the partitioner's seed interpolates it
    return build_partitioner(cfg.partitioner, data, cfg.num_clients, cfg.seed)


def column(ds: datasets.Dataset, name: str) -> np.ndarray:
    return np.asarray(ds.with_format("numpy", columns=[name])[:][name])


def partition_rows(partitioner) -> list[np.ndarray]:
    return [column(partitioner.load_partition(i), "row") for i in range(partitioner.num_partitions)]


def label_histograms(partitioner, num_classes: int = 10) -> np.ndarray:
    rows = []
    for i in range(partitioner.num_partitions):
        counts = np.bincount(column(partitioner.load_partition(i), "label"), minlength=num_classes)
        rows.append(counts / counts.sum())
    return np.array(rows)


def mean_tv_to_pooled(partitioner, labels: np.ndarray) -> float:
    """Mean total-variation distance of the clients' label histograms to the pooled one."""
    pooled = np.bincount(labels, minlength=10) / len(labels)
    return float(np.mean(0.5 * np.abs(label_histograms(partitioner) - pooled).sum(axis=1)))


def assert_one_sentence(message: str) -> None:
    assert "\n" not in message
    assert message.endswith(".") and not message.endswith(".."), message
    assert not re.search(r"[.!?]\s+[A-Z]", message), f"more than one sentence: {message!r}"


# --- every shipped option ---------------------------------------------------------------------


def test_the_six_documented_options_are_shipped():
    assert PARTITIONER_OPTIONS == ["dirichlet", "iid", "natural", "pathological", "quantity_skew", "shards"]


@pytest.mark.parametrize("name", PARTITIONER_OPTIONS)
def test_every_option_gives_num_clients_disjoint_partitions(name, digits, synthetic):
    data = synthetic if name == "natural" else digits
    partitioner = partition(name, data)
    assert partitioner.num_partitions == NUM_CLIENTS
    rows = partition_rows(partitioner)
    assert all(len(r) >= 2 for r in rows)
    flat = np.concatenate(rows)
    assert len(np.unique(flat)) == len(flat), "an example is in two partitions"
    assert set(flat) <= set(range(len(data.train)))


@pytest.mark.parametrize("name", ["iid", "dirichlet", "quantity_skew", "natural"])
def test_partitions_cover_every_training_example(name, digits, synthetic):
    data = synthetic if name == "natural" else digits
    flat = np.concatenate(partition_rows(partition(name, data)))
    np.testing.assert_array_equal(np.sort(flat), np.arange(len(data.train)))


def test_partitions_keep_the_rows_of_the_training_split(digits):
    # a partition's examples are the training split's examples, features and labels together
    partitioner = partition("dirichlet", digits)
    for i in range(NUM_CLIENTS):
        part = partitioner.load_partition(i)
        original = digits.train.select(column(part, "row"))
        np.testing.assert_array_equal(column(part, "x"), column(original, "x"))
        np.testing.assert_array_equal(column(part, "label"), column(original, "label"))


def test_iid_partitions_have_equal_sizes(digits):
    sizes = [len(r) for r in partition_rows(partition("iid", digits))]
    # 1437 = 5 * 287 + 2
    assert sorted(sizes) == [287, 287, 287, 288, 288]


def test_iid_partitions_are_not_the_stored_order(digits):
    # the training split is shuffled with the seed before being cut into blocks
    rows = partition_rows(partition("iid", digits))
    assert not np.array_equal(rows[0], np.arange(len(rows[0])))
    again = partition_rows(partition("iid", digits))
    other = partition_rows(partition("iid", digits, seed=1))
    assert all(np.array_equal(a, b) for a, b in zip(rows, again))
    assert not all(np.array_equal(a, b) for a, b in zip(rows, other))


def test_natural_partitions_are_the_users(synthetic):
    partitioner = partition("natural", synthetic)
    users = [set(column(partitioner.load_partition(i), "user")) for i in range(NUM_CLIENTS)]
    assert all(len(u) == 1 for u in users)
    assert set().union(*users) == set(range(NUM_CLIENTS))
    for i, user_set in enumerate(users):
        (user,) = user_set
        expected = np.flatnonzero(column(synthetic.train, "user") == user)
        np.testing.assert_array_equal(np.sort(partition_rows(partitioner)[i]), expected)


@pytest.mark.parametrize("classes_per_client", [1, 3])
def test_pathological_gives_each_client_at_most_its_classes(digits, classes_per_client):
    partitioner = partition("pathological", digits, f"partitioner.num_classes_per_partition={classes_per_client}")
    for i in range(NUM_CLIENTS):
        labels = set(column(partitioner.load_partition(i), "label"))
        assert 1 <= len(labels) <= classes_per_client


def test_shards_give_each_client_its_shards(digits):
    partitioner = partition("shards", digits, "partitioner.num_shards_per_partition=2")
    # 5 clients x 2 shards = 10 shards of floor(1437 / 10) = 143 examples
    assert [len(r) for r in partition_rows(partitioner)] == [286] * NUM_CLIENTS
    # shards are cut from the label-sorted data, so each client sees few labels
    assert all(len(set(column(partitioner.load_partition(i), "label"))) <= 4 for i in range(NUM_CLIENTS))


def test_smaller_dirichlet_alpha_gives_more_label_skew(digits):
    labels = column(digits.train, "label")

    def skew(alpha, seeds):
        return [mean_tv_to_pooled(partition("dirichlet", digits, f"partitioner.alpha={alpha}", seed=s), labels)
                for s in seeds]

    strong, medium, weak = skew(0.1, range(3)), skew(1.0, range(2)), skew(100.0, range(3))
    assert np.mean(strong) > np.mean(medium) > np.mean(weak)
    assert min(strong) > max(weak)  # seed by seed, not only on average
    assert np.mean(weak) < 0.1  # nearly IID
    assert np.mean(strong) > 0.3  # strongly skewed


# --- bad input ----------------------------------------------------------------------------


def test_more_iid_partitions_than_examples_is_a_config_error(digits):
    with pytest.raises(ConfigError) as info:
        partition("iid", digits, num_clients=5000)
    assert_one_sentence(str(info.value))


def test_too_many_iid_clients_for_two_examples_each_is_a_config_error():
    # 30 examples over 20 clients: 10 clients get 2 and 10 get 1
    with pytest.raises(ConfigError) as info:
        partition("iid", identity_data(30), num_clients=20)
    message = str(info.value)
    assert_one_sentence(message)
    assert "at least 2" in message
    assert "1 example" in message


def test_more_shards_than_examples_is_a_config_error(digits):
    with pytest.raises(ConfigError) as info:
        partition("shards", digits, num_clients=1000)
    assert_one_sentence(str(info.value))


def test_impossible_dirichlet_split_is_one_sentence(digits):
    with pytest.raises(ConfigError) as info:
        partition("dirichlet", digits, num_clients=500)
    assert_one_sentence(str(info.value))


def test_too_many_quantity_skew_clients_is_a_config_error(digits):
    with pytest.raises(ConfigError) as info:
        partition("quantity_skew", digits, num_clients=500)
    message = str(info.value)
    assert_one_sentence(message)
    assert "1437" in message and "500" in message


def test_natural_partition_by_missing_column_is_a_config_error(synthetic):
    with pytest.raises(ConfigError) as info:
        partition("natural", synthetic, "partitioner.partition_by=writer")
    message = str(info.value)
    assert_one_sentence(message)
    assert "partitioner.partition_by" in message and "'writer'" in message
    assert "'user'" in message  # lists the columns there are


def test_natural_partitioner_on_digits_is_a_config_error(digits):
    with pytest.raises(ConfigError) as info:
        partition("natural", digits)
    message = str(info.value)
    assert_one_sentence(message)
    assert "partitioner.partition_by" in message and "natural id" in message


@pytest.mark.parametrize("num_clients", [4, 6])
def test_num_clients_other_than_the_number_of_natural_ids_is_a_config_error(synthetic, num_clients):
    with pytest.raises(ConfigError) as info:
        partition("natural", synthetic, num_clients=num_clients)
    message = str(info.value)
    assert_one_sentence(message)
    assert f"num_clients={NUM_CLIENTS}" in message


def test_natural_partitioner_by_an_explicit_column(digits):
    # any existing column works as the natural id; here the label, 10 values
    partitioner = partition("natural", digits, "partitioner.partition_by=label", num_clients=10)
    assert sorted(len(set(column(partitioner.load_partition(i), "label"))) for i in range(10)) == [1] * 10


# --- QuantitySkewPartitioner -----------------------------------------------------------------


def labelled_dataset(n: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"row": np.arange(n), "label": np.arange(n) % 10})


def quantity_skew(n: int, num_partitions: int, beta: float, min_size: int, seed: int) -> QuantitySkewPartitioner:
    partitioner = QuantitySkewPartitioner(
        num_partitions=num_partitions, beta=beta, min_partition_size=min_size, seed=seed
    )
    partitioner.dataset = labelled_dataset(n)
    return partitioner


@pytest.mark.parametrize("seed", range(4))
def test_quantity_skew_sizes_sum_to_n_and_respect_the_minimum(seed):
    partitioner = quantity_skew(1000, 8, beta=0.5, min_size=20, seed=seed)
    rows = partition_rows(partitioner)
    sizes = [len(r) for r in rows]
    assert sum(sizes) == 1000
    assert min(sizes) >= 20
    np.testing.assert_array_equal(np.sort(np.concatenate(rows)), np.arange(1000))


def test_quantity_skew_same_seed_is_identical_other_seed_differs():
    a = partition_rows(quantity_skew(1000, 8, beta=0.5, min_size=20, seed=3))
    b = partition_rows(quantity_skew(1000, 8, beta=0.5, min_size=20, seed=3))
    c = partition_rows(quantity_skew(1000, 8, beta=0.5, min_size=20, seed=4))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert [len(x) for x in a] != [len(x) for x in c]


def test_smaller_beta_gives_a_larger_size_spread():
    def spread(beta):
        cvs = []
        for seed in range(4):
            partitioner = quantity_skew(2000, 10, beta, min_size=5, seed=seed)
            sizes = np.array([len(partitioner.load_partition(i)) for i in range(10)])
            cvs.append(sizes.std() / sizes.mean())
        return np.mean(cvs)

    small, medium, large = spread(0.5), spread(5.0), spread(500.0)
    assert small > medium > large
    assert large < 0.1  # nearly equal sizes


def test_quantity_skew_labels_stay_roughly_iid():
    n = 20_000
    partitioner = quantity_skew(n, 5, beta=1.0, min_size=500, seed=0)
    pooled = np.full(10, 0.1)
    for i in range(5):
        labels = column(partitioner.load_partition(i), "label")
        histogram = np.bincount(labels, minlength=10) / len(labels)
        # >= 500 uniformly drawn examples: the expected distance is about 0.05
        assert 0.5 * np.abs(histogram - pooled).sum() < 0.15


def test_quantity_skew_impossible_minimum_raises_value_error():
    with pytest.raises(ValueError, match="cannot give"):
        partition_rows(quantity_skew(100, 11, beta=1.0, min_size=10, seed=0))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_partitions": 0}, "partitioner.num_partitions must be at least 1 (got 0)."),
        ({"beta": 0.0}, "partitioner.beta must be greater than 0 (got 0.0)."),
        ({"beta": -1.0}, "partitioner.beta must be greater than 0 (got -1.0)."),
        ({"min_partition_size": -1}, "partitioner.min_partition_size must be at least 0 (got -1)."),
    ],
)
def test_quantity_skew_rejects_bad_settings_in_one_sentence(settings, message):
    arguments = {"num_partitions": 3, "beta": 1.0, "min_partition_size": 10, "seed": 0, **settings}
    with pytest.raises(ConfigError) as raised:
        QuantitySkewPartitioner(**arguments)
    assert str(raised.value) == message


# --- Federation.client ------------------------------------------------------------------------


def identity_data(n: int = 203) -> FederatedData:
    """Each example's single feature is its row number, so tensors name their rows."""
    train = datasets.Dataset.from_dict({"x": [[float(i)] for i in range(n)], "label": [i % 3 for i in range(n)]})
    test = datasets.Dataset.from_dict({"x": [[-1.0]], "label": [0]})
    return FederatedData(train=train, test=test, feature_columns=["x"], label_column="label",
                         input_shape=(1,), num_classes=3)


def federation(eval_fraction: float = 0.1, seed: int = 0, data: FederatedData | None = None) -> Federation:
    data = data or identity_data()
    cfg = composed("partitioner=iid", "num_clients=4")
    return Federation(data, build_partitioner(cfg.partitioner, data, 4, seed=0), eval_fraction, seed)


@pytest.mark.parametrize("eval_fraction", [0.1, 0.25, 0.5])
def test_client_train_and_eval_split_the_partition(eval_fraction):
    fed = federation(eval_fraction)
    assert fed.num_clients == 4
    seen = []
    for pid in range(4):
        client = fed.client(pid)
        partition_rows_ = sorted(column(fed.partitioner.load_partition(pid), "x")[:, 0].tolist())
        n = len(partition_rows_)
        train_rows = client.train_x[:, 0].tolist()
        eval_rows = client.eval_x[:, 0].tolist()
        assert len(eval_rows) == max(1, round(eval_fraction * n))
        assert len(train_rows) == n - len(eval_rows)
        assert not set(train_rows) & set(eval_rows)
        assert sorted(train_rows + eval_rows) == partition_rows_
        # labels travel with their examples
        assert client.train_y.tolist() == [int(r) % 3 for r in train_rows]
        assert client.eval_y.tolist() == [int(r) % 3 for r in eval_rows]
        seen += train_rows + eval_rows
    assert sorted(seen) == [float(i) for i in range(203)]


def test_client_keeps_at_least_one_eval_example():
    fed = federation(eval_fraction=0.001)
    assert all(len(fed.client(pid).eval_y) == 1 for pid in range(4))


def test_eval_fraction_0_trains_on_every_example_of_the_partition():
    fed = federation(eval_fraction=0)
    for pid in range(4):
        client = fed.client(pid)
        partition_rows_ = sorted(column(fed.partitioner.load_partition(pid), "x")[:, 0].tolist())
        assert sorted(client.train_x[:, 0].tolist()) == partition_rows_
        assert client.train_y.tolist() == [int(r) % 3 for r in client.train_x[:, 0].tolist()]
        assert len(client.eval_x) == len(client.eval_y) == 0
    # local DP sizes its noise by the same split, without materializing the clients
    assert train_sizes(fed) == [len(fed.partitioner.load_partition(pid)) for pid in range(4)]


def test_whole_partitions_come_in_the_client_split_order():
    # every eval_fraction splits the same client-split permutation: its first examples are kept for
    # evaluation (none with eval_fraction 0), the rest train in that order
    fed, whole = federation(eval_fraction=0.1), federation(eval_fraction=0)
    for pid in range(4):
        order = torch.cat([fed.client(pid).eval_x, fed.client(pid).train_x])
        assert torch.equal(order, whole.client(pid).train_x)


def test_client_is_cached():
    fed = federation()
    first = fed.client(2)
    assert fed.client(2) is first
    assert fed.client(1) is not first


def test_client_split_is_deterministic_for_the_seed():
    a, b, c = federation(seed=5), federation(seed=5), federation(seed=6)
    for pid in range(4):
        assert torch.equal(a.client(pid).train_x, b.client(pid).train_x)
        assert torch.equal(a.client(pid).eval_x, b.client(pid).eval_x)
    assert any(
        not torch.equal(a.client(pid).eval_x.sort(0).values, c.client(pid).eval_x.sort(0).values) for pid in range(4)
    )


def test_clients_split_differently_from_each_other():
    # the split seed includes the partition id: equal-sized partitions do not share one permutation
    fed = federation(data=identity_data(200))  # four partitions of 50
    positions = []
    for pid in range(4):
        stored_order = column(fed.partitioner.load_partition(pid), "x")[:, 0].tolist()
        positions.append(tuple(stored_order.index(float(r)) for r in fed.client(pid).eval_x[:, 0]))
    assert all(len(p) == 5 for p in positions)
    assert len(set(positions)) > 1


def test_test_tensors_are_the_test_split():
    fed = federation()
    x, y = fed.test_tensors()
    assert x.tolist() == [[-1.0]] and y.tolist() == [0]
    assert fed.test_tensors()[0] is x


@pytest.mark.parametrize("name", PARTITIONER_OPTIONS)
def test_kept_rows_are_the_rows_load_partition_returns(name, digits, synthetic):
    # Federation reads a client's rows by position instead of building its Dataset
    data = synthetic if name == "natural" else digits
    partitioner = partition(name, data)
    view = partitioner.dataset.with_format("numpy")
    for i in range(partitioner.num_partitions):
        rows = kept_rows(partitioner, i)
        assert rows is not None
        np.testing.assert_array_equal(view[rows]["row"], column(partitioner.load_partition(i), "row"))


class EveryOtherRow(Partitioner):
    """A partitioner that keeps no index lists: Federation must load its partitions."""

    num_partitions = 2

    def load_partition(self, partition_id: int) -> datasets.Dataset:
        return self.dataset.shard(2, partition_id, contiguous=False)


def test_federation_loads_partitions_of_a_partitioner_without_index_lists(digits):
    partitioner = EveryOtherRow()
    partitioner.dataset = digits.train
    assert kept_rows(partitioner, 0) is None
    client = Federation(digits, partitioner, eval_fraction=0.1, seed=0).client(1)
    x, y = digits.to_tensors(digits.train.shard(2, 1, contiguous=False))
    assert len(client.train_y) + len(client.eval_y) == len(y)
    assert sorted(torch.cat([client.train_y, client.eval_y]).tolist()) == sorted(y.tolist())
