"""The seed tree: named streams that never share a state, and the same draws whatever ran before."""

import itertools

import numpy as np
import pytest

from fedsim.seeds import STREAMS, generator, seed_sequence, stream_seed

KEYS = {"client": 2, "attack": 2, "attackers": 0}


def every_state(seeds=range(3), rounds=range(6), partitions=range(6)):
    for seed, stream in itertools.product(seeds, STREAMS):
        if KEYS.get(stream, 1) == 2:
            key_sets = itertools.product(rounds, partitions)
        elif KEYS.get(stream, 1) == 0:
            key_sets = [()]
        else:
            key_sets = ((key,) for key in range(max(len(rounds), len(partitions))))
        for keys in key_sets:
            yield (seed, stream, keys), tuple(seed_sequence(seed, stream, *keys).generate_state(4))


def test_no_two_streams_or_keys_share_a_state():
    states = dict(every_state())
    assert len(set(states.values())) == len(states)


def test_client_seeds_differ_from_the_sampling_stragglers_and_noise_streams_of_the_same_round():
    # The collision the tree removes: a client's seed in round r used to be the sampling seed of round r.
    for seed, server_round, partition in itertools.product(range(3), range(1, 6), range(4)):
        client = stream_seed(seed, "client", server_round, partition)
        others = [stream_seed(seed, s, server_round) for s in ("sampling-train", "sampling-evaluate", "stragglers",
                                                               "central-dp-noise")]
        assert client not in others


def test_a_stream_draws_the_same_whatever_ran_before():
    first = generator(4, "stragglers", 3).random(5)
    np.random.seed(123)
    generator(4, "sampling-train", 3).random(100)
    np.testing.assert_array_equal(generator(4, "stragglers", 3).random(5), first)


def test_a_stream_checks_its_name_and_number_of_keys():
    with pytest.raises(KeyError, match="no seed stream 'sampling'"):
        seed_sequence(0, "sampling", 1)
    with pytest.raises(TypeError, match="takes 2 key"):
        seed_sequence(0, "client", 1)
