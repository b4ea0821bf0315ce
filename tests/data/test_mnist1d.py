"""Tests for MNIST-1D: the package's generator, seeded, leaving the global random state alone."""

import random

import numpy as np
import pytest

from fedsim.data import load_mnist1d


def test_shapes_classes_and_split():
    data = load_mnist1d(num_samples=200, test_fraction=0.25, seed=0)
    assert (len(data.train), len(data.test)) == (150, 50)
    assert data.input_shape == (40,) and data.num_classes == 10
    x, y = data.to_tensors(data.train)
    assert x.shape == (150, 40) and str(x.dtype) == "torch.float32"
    # the generator draws num_samples // 10 = 20 signals per class
    _, y_test = data.to_tensors(data.test)
    np.testing.assert_array_equal(np.bincount(np.concatenate([y.numpy(), y_test.numpy()])), [20] * 10)


def test_same_as_the_package_generator_with_that_seed():
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = 100, 0.8, 7
    expected = make_dataset(args)
    data = load_mnist1d(num_samples=100, test_fraction=0.2, seed=7)
    x, y = data.to_tensors(data.train)
    np.testing.assert_allclose(x.numpy(), expected["x"].astype(np.float32))
    np.testing.assert_array_equal(y.numpy(), expected["y"])


def test_seeded_and_leaves_global_random_state_alone():
    random.seed(1)
    np.random.seed(1)
    python_before, numpy_before = random.random(), np.random.rand()
    random.seed(1)
    np.random.seed(1)
    a = load_mnist1d(num_samples=100, test_fraction=0.2, seed=3)
    assert (random.random(), np.random.rand()) == (python_before, numpy_before)
    b, c = (load_mnist1d(num_samples=100, test_fraction=0.2, seed=seed) for seed in (3, 4))
    xa, xb, xc = (d.to_tensors(d.train)[0].numpy() for d in (a, b, c))
    np.testing.assert_array_equal(xa, xb)
    assert not np.allclose(xa, xc)


def test_too_few_samples_is_a_config_error():
    from fedsim.config.checks import ConfigError

    with pytest.raises(ConfigError, match="dataset.num_samples must be at least 20"):
        load_mnist1d(num_samples=5, test_fraction=0.2, seed=0)
