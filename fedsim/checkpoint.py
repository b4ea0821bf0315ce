"""Checkpoints: what a run needs to go on after its last completed round, written atomically.

A checkpoint (``RUN_DIR/checkpoint.pkl``) holds, after round ``round``:

- the global arrays;
- the server state of every layer of the strategy stack: the attributes its class
  names in ``checkpointed`` (fedsim's strategies and wrappers) or that
  ``fedsim.flower_internals.FLOWER_SERVER_STATE`` names for Flower's classes (FedAdam's
  moments, FedAvgM's momentum, the adaptive clipping norm, ...);
- every node's Context state, by partition id (client control variates, personal
  models, local DP accountant histories), fetched and restored with query messages,
  so it works on every engine;
- the history of aggregates and failures, and the length of every results file the run
  appends to (``metrics.csv``, ``failures.csv``), which a resumed run cuts back to.

It is pickled to a temporary file in the run folder, flushed to disk and renamed over
the previous one: a kill during a write leaves the previous checkpoint whole. A
checkpoint is read only by ``fedsim resume=`` on the run folder it was written to, as
Python pickles are: never load one from a folder you do not trust.
"""

import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedsim.callbacks.base import History
from fedsim.failures import FAILURES_FILE
from fedsim.flower_internals import FLOWER_SERVER_STATE
from fedsim.results import METRICS_FILE

CHECKPOINT_FILE = "checkpoint.pkl"
APPENDED_FILES = (METRICS_FILE, FAILURES_FILE)  # the results files a run appends to, round by round
SAVE_STATE = f"{MessageType.QUERY}.save_state"  # a node replies with its Context state
LOAD_STATE = f"{MessageType.QUERY}.load_state"  # a node adds the message's records to its Context state


@dataclass
class Checkpoint:
    """What a run needs to continue after round ``round`` (see the module's docstring)."""

    round: int
    arrays: ArrayRecord
    server_state: list[dict[str, Any]]
    node_states: dict[int, RecordDict]
    history: History
    file_sizes: dict[str, int] = field(default_factory=dict)


def save(run_dir: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``run_dir`` atomically: to a temporary file, synced, then renamed."""
    path = Path(run_dir) / CHECKPOINT_FILE
    temporary = path.with_name(f".{CHECKPOINT_FILE}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as file:
            pickle.dump(checkpoint, file, protocol=pickle.HIGHEST_PROTOCOL)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:  # an interruption mid-write: the previous checkpoint stays, the partial one goes
        temporary.unlink(missing_ok=True)
        raise


def load(run_dir: Path) -> Checkpoint | None:
    """The checkpoint in ``run_dir``, or None if the run wrote none."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    with path.open("rb") as file:
        return pickle.load(file)


def remove(run_dir: Path) -> None:
    """Delete the checkpoint of a run that needs none any more (it completed)."""
    (Path(run_dir) / CHECKPOINT_FILE).unlink(missing_ok=True)


def file_sizes(run_dir: Path) -> dict[str, int]:
    """The length in bytes of every results file the run appends to (absent: 0)."""
    return {name: (run_dir / name).stat().st_size if (run_dir / name).is_file() else 0 for name in APPENDED_FILES}


def cut_results(run_dir: Path, sizes: dict[str, int]) -> None:
    """Cut the appended results files back to ``sizes``: the rows of rounds after the checkpoint go."""
    for name, size in sizes.items():
        path = run_dir / name
        if size == 0:
            path.unlink(missing_ok=True)
        elif path.is_file():
            with path.open("r+b") as file:
                file.truncate(size)


# --- server state ----------------------------------------------------------------------


def stack_layers(strategy: Strategy) -> Iterator[Strategy]:
    """``strategy`` and every strategy it wraps (``.strategy``), outermost first."""
    while strategy is not None:
        yield strategy
        strategy = getattr(strategy, "strategy", None)


def state_attributes(layer: Strategy) -> tuple[str, ...]:
    """The names of the attributes that hold ``layer``'s server state between rounds."""
    names = [name for cls, attributes in FLOWER_SERVER_STATE.items() if isinstance(layer, cls) for name in attributes]
    names += getattr(layer, "checkpointed", ())
    return tuple(dict.fromkeys(names))


def server_state(strategy: Strategy) -> list[dict[str, Any]]:
    """The server state of every layer of the stack, outermost first (attributes not yet set are left out)."""
    return [
        {name: getattr(layer, name) for name in state_attributes(layer) if hasattr(layer, name)}
        for layer in stack_layers(strategy)
    ]


def load_server_state(strategy: Strategy, state: list[dict[str, Any]]) -> None:
    """Set every layer's state attributes to those of a checkpoint of the same stack."""
    layers = list(stack_layers(strategy))
    if len(layers) != len(state):
        raise ValueError(f"the checkpoint holds {len(state)} strategy layers, the run has {len(layers)}")
    for layer, attributes in zip(layers, state):
        for name, value in attributes.items():
            setattr(layer, name, value)


# --- node state ------------------------------------------------------------------------


def node_states(grid: Grid, node_partitions: dict[int, int]) -> dict[int, RecordDict]:
    """Every node's Context state, by partition id (nodes whose state is empty are left out)."""
    messages = [Message(RecordDict(), dst_node_id=node, message_type=SAVE_STATE) for node in node_partitions]
    replies = all_answered(grid, messages, "report its state")
    return {
        node_partitions[reply.metadata.src_node_id]: reply.content
        for reply in replies
        if len(reply.content) > 0
    }


def load_node_states(grid: Grid, node_partitions: dict[int, int], states: dict[int, RecordDict]) -> None:
    """Give every node the Context state its partition had in a checkpoint."""
    node_of = {partition: node for node, partition in node_partitions.items()}
    messages = [Message(state, dst_node_id=node_of[partition], message_type=LOAD_STATE) for partition, state in states.items()]
    if messages:
        all_answered(grid, messages, "take its state")


def all_answered(grid: Grid, messages: list[Message], what: str) -> list[Message]:
    """The replies to ``messages``; RuntimeError if a node did not answer or answered with an error."""
    replies = list(grid.send_and_receive(messages))
    failed = [reply.error.reason for reply in replies if reply.has_error()]
    if failed or len(replies) != len(messages):
        raise RuntimeError(f"{len(messages) - len(replies) + len(failed)} node(s) did not {what}: {failed[:1]}")
    return replies
