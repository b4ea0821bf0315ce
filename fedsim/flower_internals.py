"""Every private or internal API of Flower and flwr-datasets that fedsim uses, in one place."""

# Each section says why fedsim needs the internal and the version it was checked
# against (flwr 1.42, flwr-datasets 0.6). tests/test_flower_internals.py checks that
# each one still exists and still behaves as fedsim assumes: after a Flower upgrade,
# run it first. Anything heavy (the Ray backend) is imported inside a function, so
# importing this module costs no more than importing flwr.serverapp does. Each section
# imports what it explains, hence the imports below the top of the module.
# The exception: engine=deployment's use of Flower's Runtime API (claiming tasks, the
# task's grid, flwr-clientapp's steps) lives with the code that speaks it, in
# fedsim/deployment/flower_runtime.py and clientapp_executor.py, and
# tests/test_deployment.py runs it against real SuperLinks and SuperNodes.
# pylint: disable=wrong-import-position

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import Array, Message
from flwr.serverapp.strategy import FedAvg

if TYPE_CHECKING:
    from flwr.server.superlink.fleet.vce.backend.raybackend import RayBackend
    from flwr.simulation.ray_transport.ray_actor import BasicActorPool  # noqa: F401  (fedsim/engines/ray.py's type hints)
    from flwr_datasets.partitioner import Partitioner

__all__ = [
    "ErrorCode",
    "FLOWER_SERVER_STATE",
    "KEY_CLIPPING_NORM",
    "KEY_NORM_BIT",
    "Run",
    "check_and_log_replies",
    "compute_adaptive_clip_model_update",
    "compute_delta_and_h",
    "create_run",
    "fill_numpy_array_fields",
    "get_local_weights",
    "get_train_loss",
    "partition_indices",
    "ray_backend_class",
    "select_multikrum",
    "set_message_id",
    "set_task_identity",
    "validate_message_reply_consistency",
]


# --- Run (fedsim/engines/local.py, fedsim/sampling.py) ---------------------------------
# A Grid must hold a Run (its abstract ``set_run``/``run`` are typed with it) and
# Flower's compat layer reads ``grid.run.run_id``; flwr.app and flwr.serverapp do not
# export the class. ``Run.create_empty`` is how Flower's own simulation builds one.
# Checked against flwr 1.42.
from flwr.supercore.run import Run


def create_run(run_id: int) -> Run:
    """A Run with ``run_id`` and every other field empty, as Flower's simulation makes one."""
    return Run.create_empty(run_id=run_id)


# --- Task identity (fedsim/engines/local.py, tests) -------------------------------------
# ``Message(content, dst_node_id, message_type)`` reads the sender's run id, node id
# and task id from the class attributes of ``TaskIdentity``; Flower's runtimes set them
# before they call a ServerApp, and so must the local engine (and tests that build
# instruction messages). There is no public setter. Checked against flwr 1.42.
from flwr.supercore.task_identity import TaskIdentity


def set_task_identity(run_id: int, node_id: int, task_id: int = 1) -> None:
    """Make messages built from now on in this process come from ``node_id`` in run ``run_id``."""
    TaskIdentity.task_id = task_id
    TaskIdentity.run_id = run_id
    TaskIdentity.node_id = node_id


# --- Message id (fedsim/engines/local.py) -----------------------------------------------
# A Grid gives every pushed message an id, which its reply carries as
# ``reply_to_message_id``. ``Metadata.message_id`` is read-only; Flower's own grids set
# it by writing ``metadata.__dict__["_message_id"]`` (superlink/grid/inmemory_grid.py),
# and the local engine does the same. Checked against flwr 1.42.


def set_message_id(message: Message, message_id: str) -> None:
    """Give ``message`` the id ``message_id``, as Flower's in-memory grid does when it pushes it."""
    message.metadata.__dict__["_message_id"] = message_id


# --- Error codes (fedsim/engines/replies.py, fedsim/engines/workers.py) -----------------
# A ClientApp that raises, or a worker process that dies, becomes an error reply with
# the code a real SuperNode would send. flwr.app exports ``Error`` but not the codes.
# Checked against flwr 1.42.
from flwr.common.constant import ErrorCode

# --- Array fields (fedsim/resident.py) --------------------------------------------------
# ``ResidentArray`` subclasses ``flwr.app.Array`` but keeps numpy values instead of
# ``.npy`` bytes: it fills the dataclass fields ``dtype``/``shape``/``stype`` that
# Array keeps in its instance ``__dict__`` directly (``Array.__init__`` would serialise
# the values; ``Array.__setattr__`` marks the object dirty field by field) and overrides
# ``data`` and ``numpy``. ``SType.NUMPY`` is the stype ``Array(ndarray)`` sets; flwr.app
# does not export it. Checked against flwr 1.42.
from flwr.common.constant import SType


def fill_numpy_array_fields(array: Array, values: np.ndarray) -> None:
    """Set ``array``'s dtype, shape and stype to those ``Array(values)`` would have, without serialising."""
    array.__dict__.update(dtype=str(values.dtype), shape=tuple(values.shape), stype=SType.NUMPY)


# --- FedAvg's reply checks (strategies/arrays.py) ---------------------------------------
# Strategies that compute the next global model themselves still filter, log and
# validate replies exactly as FedAvg does, with FedAvg's private
# ``_check_and_log_replies``; those whose replies carry extra ArrayRecords skip its
# validation and call ``validate_message_reply_consistency`` without the
# one-ArrayRecord check. Neither is public. Checked against flwr 1.42.
from flwr.serverapp.strategy.strategy_utils import validate_message_reply_consistency


def check_and_log_replies(
    strategy: FedAvg, replies: Iterable[Message], *, is_train: bool, validate: bool
) -> tuple[list[Message], list[Message]]:
    """The (valid, error) replies, split, logged and (if ``validate``) checked as ``strategy`` (a FedAvg) does."""
    return strategy._check_and_log_replies(  # pylint: disable=protected-access
        replies, is_train=is_train, validate=validate
    )


# --- Aggregation steps (strategies/qfedavg.py, strategies/robust.py) --------------------
# fedsim's q-FedAvg and Multi-Krum weight the clients by ``strategy.weighting``; Flower's
# aggregate_train weights them its own way in one piece, so fedsim's versions rebuild it
# from Flower's module-level steps: q-FedAvg's Delta_k and h_k of one reply
# (``compute_delta_and_h``, with ``get_local_weights`` and ``get_train_loss`` reading the
# reply), Multi-Krum's choice of replies (``select_multikrum``). The modules do not export
# them. Checked against flwr 1.42.
from flwr.serverapp.strategy.multikrum import select_multikrum
from flwr.serverapp.strategy.qfedavg import compute_delta_and_h, get_local_weights, get_train_loss


# --- Differential privacy (fedsim/privacy/central.py) -----------------------------------
# Client-side clipping in fedsim's train handler reads the clipping norm Flower's
# client-side DP wrappers put in the train config (KEY_CLIPPING_NORM), clips as
# Flower's clipping mods do (compute_adaptive_clip_model_update: clips the update in
# place, returns whether it had to) and reports the norm bit the adaptive wrapper counts
# (KEY_NORM_BIT). The mods refuse fedsim's messages (more than one ArrayRecord), and
# these helpers are not exported publicly. Checked against flwr 1.42.
from flwr.supercore.differential_privacy import (
    KEY_CLIPPING_NORM,
    KEY_NORM_BIT,
    compute_adaptive_clip_model_update,
)


# --- Server state (fedsim/checkpoint.py) -----------------------------------------------
# A checkpoint keeps each strategy's state between rounds. Flower's strategies keep it in
# undocumented attributes their methods set after ``__init__``: the server optimizers'
# moments and the model they step from (FedOpt: ``current_arrays``, ``m_t``, ``v_t``;
# FedAvgM: ``current_arrays``, ``momentum_vector``), QFedAvg's and the server-side DP
# wrappers' copy of the model they sent, the adaptive clipping norm. fedsim's own classes
# name theirs in ``checkpointed``. tests/test_checkpoint.py checks that every attribute a
# round changes is named here or there. Checked against flwr 1.42.
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvgM,
    QFedAvg,
)
from flwr.serverapp.strategy.fedopt import FedOpt

FLOWER_SERVER_STATE: dict[type, tuple[str, ...]] = {
    FedOpt: ("current_arrays", "m_t", "v_t"),
    FedAvgM: ("current_arrays", "momentum_vector"),
    QFedAvg: ("current_arrays",),
    DifferentialPrivacyServerSideFixedClipping: ("current_arrays",),
    DifferentialPrivacyServerSideAdaptiveClipping: ("clipping_norm", "current_arrays"),
    DifferentialPrivacyClientSideAdaptiveClipping: ("clipping_norm",),
}


# --- Ray backend (fedsim/engines/ray.py) ------------------------------------------------
# The ray engine keeps the Ray runtime and the ClientApp actors between runs by
# replacing ``RayBackend.build`` and ``RayBackend.terminate`` while a run lasts, and by
# handing a kept ``BasicActorPool`` (its ``pool`` list of idle actors, ``num_actors``)
# to the next run's backend as ``backend.pool``. Both classes
# are internal to Flower's Simulation Engine; both names are importable from here for
# type annotations only. Imported lazily: the module imports Ray. Checked against flwr 1.42.


def ray_backend_class() -> type["RayBackend"]:
    """Flower's Ray backend class (importing it imports Ray)."""
    from flwr.server.superlink.fleet.vce.backend.raybackend import RayBackend

    return RayBackend


# --- Partition index lists (fedsim/data/partitioners.py) --------------------------------
# flwr-datasets' partitioners (Dirichlet, Pathological, Shard, NaturalId, ...) keep each
# partition's row positions in the private ``_partition_id_to_indices`` dict, filled by
# their first ``load_partition``, and ``load_partition(i)`` is
# ``partitioner.dataset.select(_partition_id_to_indices[i])`` (positions in the dataset
# as it is after that first load: ShardPartitioner sorts it). fedsim reads a client's
# rows from it instead of building a ``datasets.Dataset`` per client (seconds at 10,000
# clients); a partitioner without it is loaded instead. Checked against flwr-datasets 0.6.


def partition_indices(partitioner: "Partitioner", partition_id: int) -> Sequence[int] | None:
    """The row positions ``partitioner`` keeps for ``partition_id``, or None if it keeps none."""
    indices = getattr(partitioner, "_partition_id_to_indices", None)
    if isinstance(indices, dict) and partition_id in indices:
        return indices[partition_id]
    return None
