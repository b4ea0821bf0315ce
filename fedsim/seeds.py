"""The seed tree: every random draw of a run comes from a named stream of the run's seed.

A stream is a numpy generator (or a seed for torch or Opacus) keyed by the run's seed,
the stream's name and the stream's own keys (a round, a partition id). The same keys
give the same draws whatever ran before, whichever engine runs and in whatever order
nodes are listed, so a run is reproduced on rerun, with workers and on Ray.

=====================  =======================  ===========================================
stream                 keys                     draws
=====================  =======================  ===========================================
``sampling-train``     round                    the round's training clients
``sampling-evaluate``  round                    the round's federated-evaluation clients
``stragglers``         round                    which clients straggle, and their epochs
``central-dp-noise``   round                    the noise Flower's central-DP wrappers add
``client``             round, partition id      a client's data order, dropout, DP-SGD
``client-split``       partition id             a client's local train/evaluation split
``aggregate-noise``    round                    the noise ``strategy=norm_clipping`` adds
``attackers``          (none)                   which partitions are malicious, for the whole run
``attack``             round, partition id      a malicious client's draws (noise, poisoned examples)
``faults``             round                    which training clients fail
=====================  =======================  ===========================================
"""

import numpy as np

# Each stream's place in the tree: its own first spawn key, then a fixed number of keys.
# numpy's SeedSequence(seed, spawn_key=(stream id, *keys)) pads the seed to its pool
# size before the spawn key, so streams with distinct ids never share a state.
_STREAMS: dict[str, tuple[int, int]] = {  # name: (stream id, number of keys)
    "sampling-train": (1, 1),
    "sampling-evaluate": (2, 1),
    "stragglers": (3, 1),
    "central-dp-noise": (4, 1),
    "client": (5, 2),
    "client-split": (6, 1),
    "aggregate-noise": (7, 1),
    "attackers": (20, 0),
    "attack": (21, 2),
    "faults": (22, 1),
}
STREAMS = tuple(_STREAMS)


def seed_sequence(seed: int, stream: str, *keys: int) -> np.random.SeedSequence:
    """The SeedSequence of ``stream`` at ``keys`` under the run's ``seed``."""
    if stream not in _STREAMS:
        raise KeyError(f"no seed stream {stream!r}; the streams are {', '.join(STREAMS)}")
    stream_id, num_keys = _STREAMS[stream]
    if len(keys) != num_keys:
        raise TypeError(f"seed stream {stream!r} takes {num_keys} key(s), got {len(keys)}")
    return np.random.SeedSequence(seed, spawn_key=(stream_id, *keys))


def generator(seed: int, stream: str, *keys: int) -> np.random.Generator:
    """A numpy generator drawing from ``stream`` at ``keys``."""
    return np.random.default_rng(seed_sequence(seed, stream, *keys))


def stream_seed(seed: int, stream: str, *keys: int) -> int:
    """One 32-bit seed from ``stream`` at ``keys``, for generators that take an integer (torch, numpy's legacy one)."""
    return int(seed_sequence(seed, stream, *keys).generate_state(1)[0])
