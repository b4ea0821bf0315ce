"""The local Ray runtime of the ray engine: loopback only, and gone soon after a killed fedsim."""

import ipaddress
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

# A fedsim process as the ray engine leaves it between runs: a local Ray runtime started
# by start_ray, with an actor (a worker process) alive. It reports what start_ray left in
# this process's settings, then "ready", then sleeps until it is ended.
CHILD = r"""
import os, sys, time
import ray
from ray._private import ray_constants
from fedsim.engines.ray import start_ray

before = (ray_constants.ENABLE_RAY_CLUSTER, os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"))
start_ray({})
after = (ray_constants.ENABLE_RAY_CLUSTER, os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"))
print("settings restored" if before == after else f"settings changed: {before} -> {after}", flush=True)
print("node", ray.util.get_node_ip_address(), flush=True)

@ray.remote(num_cpus=0)
class Actor:
    def pid(self):
        return os.getpid()

actor = Actor.remote()
ray.get(actor.pid.remote(), timeout=120)
print("ready", flush=True)
time.sleep(600)
"""


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _descendants(pid: int) -> list:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _running(processes: list) -> list:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture(scope="module")
def fedsim_with_ray():
    """A child process running a local Ray runtime of the ray engine, and its output so far."""
    env = dict(os.environ, RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO="0", PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    lines = []
    for line in child.stdout:
        lines.append(line.strip())
        if line.strip() == "ready":
            break
    seen = _descendants(child.pid)
    try:
        assert lines and lines[-1] == "ready", f"Ray did not start in the child: {lines}"
        yield child, lines
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)  # ends Ray at exit, as a finished run does
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for process in _running(seen + _descendants(child.pid)):
            process.kill()
        child.stdout.close()


def test_local_ray_listens_on_loopback_only(fedsim_with_ray):
    child, lines = fedsim_with_ray
    assert "settings restored" in lines
    assert "node 127.0.0.1" in lines
    listening = []
    for process in _descendants(child.pid):
        try:
            connections = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        listening += [(process.name(), c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN]
    names = {name for name, _, _ in listening}
    assert {"gcs_server", "raylet"} <= names, listening  # the test sees Ray's servers
    assert all(_is_loopback(ip) for _, ip, _ in listening), listening


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watchdog is for Linux")
def test_no_ray_process_outlives_a_killed_fedsim_by_10_s(fedsim_with_ray):
    child, _ = fedsim_with_ray
    ray_processes = _descendants(child.pid)
    names = {process.name() for process in ray_processes}
    assert {"gcs_server", "raylet"} <= names, names
    # The agents are those that outlived a killed driver before: check that they are here.
    assert any("Agent" in name for name in names), names
    child.kill()
    child.wait()
    deadline = time.monotonic() + 10
    while _running(ray_processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [(process.pid, process.name()) for process in _running(ray_processes)]
    assert not left, f"Ray processes alive 10 s after fedsim was killed: {left}"
