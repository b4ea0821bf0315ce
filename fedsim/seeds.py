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
=====================  =======================  ===========================================
"""

import numpy as np

# Each stream's place in the tree: how its keys and the run's seed become the entropy of
# a numpy SeedSequence.
_LAYOUTS = {
    "sampling-train": lambda seed, server_round: [seed, server_round, 0],
    "sampling-evaluate": lambda seed, server_round: [seed, server_round, 1],
    "stragglers": lambda seed, server_round: [seed, server_round, 2],
    "central-dp-noise": lambda seed, server_round: [seed, server_round, 3],
    "client": lambda seed, server_round, partition_id: [seed, server_round, partition_id],
    "client-split": lambda seed, partition_id: [seed, partition_id],
}
STREAMS = tuple(_LAYOUTS)


def seed_sequence(seed: int, stream: str, *keys: int) -> np.random.SeedSequence:
    """The SeedSequence of ``stream`` at ``keys`` under the run's ``seed``."""
    if stream not in _LAYOUTS:
        raise KeyError(f"no seed stream {stream!r}; the streams are {', '.join(STREAMS)}")
    return np.random.SeedSequence(_LAYOUTS[stream](seed, *keys))


def generator(seed: int, stream: str, *keys: int) -> np.random.Generator:
    """A numpy generator drawing from ``stream`` at ``keys``."""
    return np.random.default_rng(seed_sequence(seed, stream, *keys))


def stream_seed(seed: int, stream: str, *keys: int) -> int:
    """One 32-bit seed from ``stream`` at ``keys``, for generators that take an integer (torch, numpy's legacy one)."""
    return int(seed_sequence(seed, stream, *keys).generate_state(1)[0])
