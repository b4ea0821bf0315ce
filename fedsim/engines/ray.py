"""The ray engine: Flower's Simulation Engine, for many cores, GPUs or a Ray cluster."""

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING

from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

from fedsim.config.checks import ConfigError, FedsimWarning, require
from fedsim.flower_internals import ray_backend_class

if TYPE_CHECKING:
    import torch

    from fedsim.flower_internals import BasicActorPool, RayBackend

# The arguments this process's Ray runtime was started with by fedsim, if it was.
_started_with: dict | None = None
# The idle actor pool the last run left, with the client resources it was made for.
_kept_actors: tuple[dict, "BasicActorPool"] | None = None
# The watchdogs of the local Ray runtimes this process started (see fedsim.ray_watchdog), kept to be reaped.
_watchdogs: list = []


class _DropRunSimulationDeprecation(logging.Filter):
    """fedsim calls ``run_simulation`` on purpose (it takes app objects); hide its notice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`run_simulation` function is deprecated" not in record.getMessage()


class RayEngine:
    """Run the apps with ``flwr.simulation.run_simulation`` on Ray.

    The Ray runtime and the backend's ClientApp actors are started once per process
    and kept for the next run (the runs of a Hydra sweep share them): Flower's Ray
    backend ends its actors and Ray after every run, which costs each run Ray's start-up
    and new actor processes that import torch and fedsim again. Ray ends both when the
    process ends (a watchdog process does, if it is killed: see ``start_ray``).

    Parameters
    ----------
    client_resources : dict[str, float]
        ``num_cpus`` (greater than 0) and ``num_gpus`` (at least 0, fractions share a
        GPU) reserved for each ClientApp actor.
    address : str | None
        Address of a running Ray cluster to join (``HOST:PORT``, ``ray://HOST:PORT``, or
        ``auto``: the one ``ray start`` last started on this machine); ``local`` starts a
        local Ray runtime; None joins the cluster of ``RAY_ADDRESS`` or of the last ``ray
        start`` while it runs, else starts a local runtime. A cluster that does not answer
        is a ``ConfigError`` before the run starts (see ``checked_init_args``).
    """

    def __init__(self, *, client_resources: dict[str, float], address: str | None) -> None:
        require(
            sorted(client_resources) == ["num_cpus", "num_gpus"],
            f"engine.client_resources must set exactly num_cpus and num_gpus (got {sorted(client_resources)}).",
        )
        num_cpus, num_gpus = client_resources["num_cpus"], client_resources["num_gpus"]
        # The nested values reach here unchecked by the signature's types, so a string fails here too.
        require(
            isinstance(num_cpus, (int, float)) and num_cpus > 0,
            f"engine.client_resources.num_cpus must be greater than 0 (got {num_cpus!r}).",
        )
        require(
            isinstance(num_gpus, (int, float)) and num_gpus >= 0,
            f"engine.client_resources.num_gpus must be at least 0 (got {num_gpus!r}).",
        )
        self.client_resources = dict(client_resources)
        self.address = address
        # Checked as the plan is built, before any data is loaded: an address where no
        # cluster answers is one sentence within seconds, not a run that fails later.
        self.init_args = checked_init_args(address)

    def client_device(self, device: "torch.device") -> str:
        """The device the ClientApp actors train on for a run on ``device``: on a GPU, the share Ray gives each."""
        if device.type == "cpu":
            return "cpu"
        require(
            self.client_resources["num_gpus"] > 0,
            f"device={device} with engine=ray needs a GPU share for each ClientApp actor: set "
            "engine.client_resources.num_gpus above 0 (0.25: four actors share a GPU), or use device=cpu.",
        )
        return "cuda"  # the GPU Ray assigns the actor, whatever the index it has in this process

    def run(self, server_app: ServerApp, client_app: ClientApp, num_nodes: int) -> None:
        from flwr.simulation import run_simulation

        # Keep Ray's current behaviour (and silence its notice about changing it).
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
        init_args = self.init_args
        start_ray(init_args)
        notice_filter = _DropRunSimulationDeprecation()
        flwr_logger = logging.getLogger("flwr")
        flwr_logger.addFilter(notice_filter)
        try:
            with ray_kept_running():
                run_simulation(
                    server_app=server_app,
                    client_app=client_app,
                    num_supernodes=num_nodes,
                    backend_config={"client_resources": self.client_resources, "init_args": init_args},
                )
        except BaseException:
            discard_kept_actors()  # a failed run may leave its actors busy or broken
            raise
        finally:
            flwr_logger.removeFilter(notice_filter)


def start_ray(init_args: dict) -> None:
    """Start Ray as Flower's Ray backend would, unless this process already runs it so.

    A runtime it starts here (rather than joins) listens on the loopback interface only
    and is watched by ``fedsim.ray_watchdog``, which ends it if this process dies without
    ending it (SIGKILL).
    """
    global _started_with  # pylint: disable=global-statement
    import ray

    if ray.is_initialized() and _started_with in (None, init_args):
        return  # ours with these arguments, or started by the user: use it
    if ray.is_initialized():
        ray.shutdown()
    pythonpath = os.pathsep.join(sys.path)  # Ray's workers need this process's import path
    local = _starts_local_runtime(init_args.get("address"))
    with _loopback_only() if local else nullcontext():
        ray.init(
            runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
            include_dashboard=False,
            # Ray's own log lines from WARNING up, forwarded to this process: the defaults of
            # Flower's simulation config (`flwr run`), which run_simulation does not pass.
            logging_level="WARNING",
            log_to_driver=True,
            **({"_node_ip_address": "127.0.0.1"} if local else {}),
            **init_args,
        )
    _started_with = dict(init_args)
    if local:
        _watch_ray_processes()


# Seconds a Ray cluster may take to answer fedsim's first request: ray.init would wait
# minutes for one that is not there, retrying every few seconds.
PROBE_SECONDS = 2.0
RAY_CLIENT_PORT = 10001  # the port of a ray://HOST address without one, as Ray's client takes it


def checked_init_args(address: str | None) -> dict[str, str]:
    """The address arguments of ``ray.init`` for ``engine.address``, once the cluster it joins is known to answer.

    The cluster is the one ``ray.init`` would join (see ``_cluster_to_join``); it must
    answer one request within ``PROBE_SECONDS`` (see ``_why_silent``), else ``ConfigError``
    names the address and where it came from. Without an address, a cluster file whose
    cluster is gone is ignored with a warning: a local runtime starts, as with no file.
    """
    if address == "local":
        return {"address": "local"}
    target, source, cluster_file = _cluster_to_join(address)
    joined = {} if address is None else {"address": address}
    silent = None if target in (None, "local") else _why_silent(target, source)
    if silent is None:
        return joined
    left_behind = "a `ray start` whose cluster ended without `ray stop` leaves it"
    if address is None and cluster_file is not None:
        warnings.warn(
            f"ignoring Ray's cluster file {cluster_file}, which records {target}: {silent} ({left_behind}); "
            "starting a local Ray runtime.",
            FedsimWarning,
            stacklevel=2,
        )
        return {"address": "local"}
    if cluster_file is not None:
        remedy = f"delete {cluster_file} if that cluster is gone ({left_behind}), or start it again"
    else:
        remedy = "start it or give the address of a running one"
    raise ConfigError(
        f"{source}: {silent}; {remedy}, or leave engine.address null (and RAY_ADDRESS unset) "
        "to start a local Ray runtime."
    )


def _cluster_to_join(address: str | None) -> tuple[str | None, str, str | None]:
    """The cluster ``ray.init(address=address)`` joins: its address (None: none, a local runtime starts),
    the setting that names it in words, and the cluster file it was read from, if it was.

    As Ray decides it: ``address`` itself; for None or ``auto``, ``RAY_ADDRESS``, else the
    address in Ray's cluster file (``/tmp/ray/ray_current_cluster``, under ``RAY_TMPDIR``
    when set), which ``ray start`` writes and a crashed cluster leaves behind; for
    ``auto`` only, else any Ray cluster running on this machine, and none is a ``ConfigError``.
    """
    from ray._common.utils import get_ray_address_file
    from ray._private import services

    if address is not None and address != "auto":
        return address, f"engine.address={address}", None
    joins = "engine.address=auto joins " if address else ""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"], f"{joins}RAY_ADDRESS={os.environ['RAY_ADDRESS']}", None
    recorded = services.find_bootstrap_address(None)
    if recorded:
        cluster_file = get_ray_address_file(None)
        return recorded, f"{joins}{recorded}, the address Ray's cluster file {cluster_file} records", cluster_file
    if address is None:
        return None, "", None
    running = sorted(services.find_gcs_addresses())
    if running:
        return running[0], f"{joins}{running[0]}, a Ray cluster running on this machine", None
    raise ConfigError(
        "engine.address=auto found no Ray cluster on this machine (none started by `ray start`, no RAY_ADDRESS); "
        "start one with `ray start --head`, give a cluster's HOST:PORT, or leave engine.address null "
        "to start a local Ray runtime."
    )


def _why_silent(address: str, source: str) -> str | None:
    """None when a Ray cluster answers at ``address`` (named by ``source``) within ``PROBE_SECONDS``, else why not.

    A ``HOST:PORT`` address is a cluster's GCS, asked for its cluster id (Ray resolves
    127.0.0.1 to this machine's address first, and so does this); a ``ray://HOST[:PORT]``
    one is a Ray Client server, pinged. An address Ray cannot read is a ``ConfigError``
    naming ``source``.
    """
    import grpc
    from ray._common.network_utils import build_address, parse_address
    from ray._private import services
    from ray.core.generated import (
        gcs_service_pb2,
        gcs_service_pb2_grpc,
        ray_client_pb2,
        ray_client_pb2_grpc,
    )

    scheme, _, rest = address.rpartition("://")
    parsed = parse_address(rest) or ((rest, RAY_CLIENT_PORT) if scheme else None)
    try:
        host, port = parsed[0], int(parsed[1])
        if not scheme:
            host = services.resolve_ip_for_localhost(host)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{source}: not a Ray address; give HOST:PORT, ray://HOST:PORT, auto or local."
        ) from None
    with grpc.insecure_channel(build_address(host, port)) as channel:
        try:
            if scheme:
                ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(
                    ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING), timeout=PROBE_SECONDS
                )
            else:
                gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                    gcs_service_pb2.GetClusterIdRequest(), timeout=PROBE_SECONDS
                )
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return f"no Ray cluster answers there within {PROBE_SECONDS:g} s"
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                return "what answers there is not a Ray cluster"
            # Anything else (a token the cluster asks for, ...) came from Ray: ray.init tells the rest.
    return None


def _starts_local_runtime(address: str | None) -> bool:
    """Whether ``ray.init(address=address)`` starts a Ray runtime here rather than join one.

    As Ray decides it: without an address it joins the cluster of ``RAY_ADDRESS`` or the
    one ``ray start`` last started on this machine, if any.
    """
    from ray._private import services

    try:
        return services.canonicalize_bootstrap_address(address) is None
    except (ValueError, OSError):  # a malformed or unreachable address
        return False  # ray.init will say what is wrong with the address


# Ray takes a node address of 127.0.0.1 for "this machine's address as others reach it"
# (`services.resolve_ip_for_localhost`) unless its clusters are off, as they are by default
# on macOS and Windows: then the node's address is the loopback one, and the GCS, the
# raylet, the agents and the workers listen on it alone instead of on every interface.
_NO_CLUSTER_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextmanager
def _loopback_only() -> Iterator[None]:
    """Turn Ray's clusters off while a local runtime starts: its processes listen on 127.0.0.1.

    The driver reads the setting from ``ray._private.ray_constants`` (set on import), the
    processes ``ray.init`` starts from their environment; both go back afterwards, so that
    a later ``ray.init(address=...)`` in this process joins a cluster as usual.
    """
    from ray._private import ray_constants

    saved_constant, saved_variable = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(_NO_CLUSTER_VARIABLE)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[_NO_CLUSTER_VARIABLE] = "0"
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_constant
        if saved_variable is None:
            os.environ.pop(_NO_CLUSTER_VARIABLE, None)
        else:
            os.environ[_NO_CLUSTER_VARIABLE] = saved_variable


def _watch_ray_processes() -> None:
    """Start ``fedsim.ray_watchdog`` over the processes of this local Ray runtime."""
    import subprocess

    import ray

    if not sys.platform.startswith("linux"):
        return
    try:  # Ray's own record of the processes ray.init started (not a public API)
        node = ray._private.worker._global_node  # pylint: disable=protected-access
        pids = [info.process.pid for infos in node.all_processes.values() for info in infos]
    except AttributeError:
        logging.getLogger(__name__).warning("Cannot find Ray's processes: they may outlive a killed fedsim.")
        return
    _watchdogs[:] = [watchdog for watchdog in _watchdogs if watchdog.poll() is None]
    _watchdogs.append(
        subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "fedsim.ray_watchdog", str(os.getpid()), *map(str, pids)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C at the terminal is for fedsim, not for it
        )
    )


@contextmanager
def ray_kept_running() -> Iterator[None]:
    """Let Flower's Ray backend keep the Ray runtime and its idle actors for the next run.

    A run whose actors are all idle and alive at its end leaves them to the next run
    with the same client resources, which uses them instead of starting new ones
    (Flower's actors load the ClientApp anew for every message, so nothing of a run's
    apps stays behind in them); otherwise they are ended as Flower ends them.
    """
    backend_class = ray_backend_class()

    def build_or_reuse(backend: "RayBackend", app_fn) -> None:
        global _kept_actors  # pylint: disable=global-statement
        if _kept_actors is not None and _kept_actors[0] == backend.client_resources:
            backend.pool, backend.app_fn = _kept_actors[1], app_fn
            _kept_actors = None
            return
        discard_kept_actors()
        build(backend, app_fn)

    def keep_idle_actors(backend: "RayBackend") -> None:
        global _kept_actors  # pylint: disable=global-statement
        pool = backend.pool
        if pool is None:
            return
        if pool.num_actors and len(pool.pool) == pool.num_actors and _alive(pool.pool):
            _kept_actors = (dict(backend.client_resources), pool)
        else:
            end_idle_actors(pool)

    build, terminate = backend_class.build, backend_class.terminate
    backend_class.build, backend_class.terminate = build_or_reuse, keep_idle_actors
    try:
        yield
    finally:
        backend_class.build, backend_class.terminate = build, terminate


def discard_kept_actors() -> None:
    """End the actors a previous run left for the next one, if any."""
    global _kept_actors  # pylint: disable=global-statement
    if _kept_actors is not None:
        end_idle_actors(_kept_actors[1])
        _kept_actors = None


def end_idle_actors(pool: "BasicActorPool") -> None:
    """End the idle actors of ``pool``, as Flower's ``terminate_all_actors`` does, but silently.

    Flower's way asks each actor to end itself, and each logs "Manually terminating
    ClientAppActor" first, a line Ray forwards to this terminal. ``ray.kill`` ends an
    idle actor from outside, before its next task, without running its code.
    """
    import ray

    for actor in pool.pool:
        ray.kill(actor)


def _alive(actors: list) -> bool:
    """Whether every actor answers (a crashed actor would fail every message sent to it)."""
    import ray

    try:
        ray.get([actor.__ray_ready__.remote() for actor in actors], timeout=30)
    except ray.exceptions.RayError:
        return False
    return True
