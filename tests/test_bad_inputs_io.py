"""Bad input around a run's inputs and outputs: a Ray cluster that is not there, a damaged
metrics.csv, an output folder that cannot be written. Each gets one sentence, not a
traceback or a silent result."""

import os
import re
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

from fedsim.config import ConfigError
from fedsim.config.checks import FedsimWarning
from fedsim.results import METRICS_FILE, MetricsWriter, load, save_config, write_status

TINY = ["num_clients=4", "num_rounds=1", "client.local_epochs=1"]


def fedsim(*args: str, cwd: Path, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """``fedsim ARGS`` in a real process, and the seconds it took."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "fedsim.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    return result, time.perf_counter() - started


def assert_one_error_line(result: subprocess.CompletedProcess, start: str) -> str:
    """The command failed with exit code 2 and said why in one line on stderr, without a traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("fedsim: error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"fedsim: error: {start}"), result.stderr
    return errors[0]


# --- engine=ray: a cluster that is not there --------------------------------------------


@pytest.fixture
def ray_env(tmp_path, monkeypatch) -> dict[str, str]:
    """An environment whose Ray files (the cluster file ``ray start`` writes) are under tmp_path, not /tmp/ray."""
    pytest.importorskip("ray")
    ray_tmp = tmp_path / "raytmp"
    (ray_tmp / "ray").mkdir(parents=True)
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return dict(os.environ)


def write_cluster_file(env: dict[str, str], address: str) -> Path:
    """Ray's cluster file, as a ``ray start`` whose cluster has since died leaves it."""
    cluster_file = Path(env["RAY_TMPDIR"]) / "ray" / "ray_current_cluster"
    cluster_file.write_text(address)
    return cluster_file


def test_ray_engine_with_an_address_where_nothing_listens_fails_in_one_line_within_10_s(ray_env, tmp_path):
    result, seconds = fedsim(*TINY, "engine=ray", "engine.address=127.0.0.1:1", f"hydra.run.dir={tmp_path / 'run'}",
                             cwd=tmp_path, env=ray_env)
    assert_one_error_line(result, "engine.address=127.0.0.1:1: no Ray cluster answers there within 2 s;")
    assert seconds < 10
    status = yaml.safe_load((tmp_path / "run" / "status.yaml").read_text())
    assert status["status"] == "failed" and "no Ray cluster answers" in status["reason"]
    assert not (tmp_path / "run" / METRICS_FILE).exists()  # no round started


def test_ray_engine_auto_with_a_stale_cluster_file_names_the_file_to_delete_within_10_s(ray_env, tmp_path):
    cluster_file = write_cluster_file(ray_env, "127.0.0.1:1")
    result, seconds = fedsim(*TINY, "engine=ray", "engine.address=auto", f"hydra.run.dir={tmp_path / 'run'}",
                             cwd=tmp_path, env=ray_env)
    error = assert_one_error_line(result, "engine.address=auto joins 127.0.0.1:1, the address Ray's cluster file ")
    assert f"delete {cluster_file} if that cluster is gone" in error
    assert seconds < 10


def test_the_default_ray_engine_ignores_a_stale_cluster_file_and_starts_its_own_runtime(ray_env):
    from fedsim.engines.ray import checked_init_args

    cluster_file = write_cluster_file(ray_env, "127.0.0.1:1")
    with pytest.warns(FedsimWarning, match=re.escape(f"ignoring Ray's cluster file {cluster_file}, which records 127.0.0.1:1:")):
        assert checked_init_args(None) == {"address": "local"}  # ray.init(address="local") starts a new runtime
    cluster_file.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert checked_init_args(None) == {}  # no file: Ray starts a local runtime by itself


def test_a_server_that_accepts_but_never_answers_is_given_up_after_the_probe_time(ray_env):
    from fedsim.engines.ray import PROBE_SECONDS, checked_init_args

    with socket.create_server(("0.0.0.0", 0)) as silent:  # Ray resolves 127.0.0.1 to this machine's address
        port = silent.getsockname()[1]
        started = time.perf_counter()
        with pytest.raises(ConfigError, match=f"engine.address=127.0.0.1:{port}: no Ray cluster answers there"):
            checked_init_args(f"127.0.0.1:{port}")
        assert PROBE_SECONDS <= time.perf_counter() - started < PROBE_SECONDS + 2


def test_ray_address_from_the_environment_or_auto_without_a_cluster_is_named(ray_env, monkeypatch):
    from ray._private import services

    from fedsim.engines.ray import checked_init_args

    monkeypatch.setattr(services, "find_gcs_addresses", frozenset)  # as on a machine running no Ray at all
    with pytest.raises(ConfigError, match=r"^engine.address=auto found no Ray cluster on this machine"):
        checked_init_args("auto")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    with pytest.raises(ConfigError, match=r"^RAY_ADDRESS=127.0.0.1:1: no Ray cluster answers there"):
        checked_init_args(None)
    with pytest.raises(ConfigError, match=r"^engine.address=auto joins RAY_ADDRESS=127.0.0.1:1: no Ray cluster"):
        checked_init_args("auto")
    assert checked_init_args("local") == {"address": "local"}  # asks nothing: it starts a runtime
    with pytest.raises(ConfigError, match=r"^engine.address=nonsense: not a Ray address; give HOST:PORT"):
        checked_init_args("nonsense")


# --- metrics.csv: cut short or damaged ---------------------------------------------------


def write_run(run_dir: Path, accuracies: list[float], status: str = "completed") -> Path:
    """A run folder as fedsim writes it, with centralized accuracy ``accuracies[r]`` in round r; its metrics.csv."""
    save_config(run_dir, {"seed": 0}, {"strategy": "fedavg"})
    writer = MetricsWriter(run_dir)
    writer.write([(r, "centralized", None, "accuracy", value) for r, value in enumerate(accuracies)])
    writer.write([(r, "federated", client, "accuracy", value) for r, value in enumerate(accuracies) for client in (0, 1)])
    writer.close()
    write_status(run_dir, status)
    return run_dir / METRICS_FILE


def test_a_last_line_cut_short_is_left_out_with_a_warning_naming_the_file_and_line(tmp_path):
    metrics = write_run(tmp_path / "run", [0.25, 0.5, 0.75])
    metrics.write_bytes(metrics.read_bytes()[:-8])  # killed while writing the last row: round 2, client 1
    lines = metrics.read_bytes().count(b"\n") + 1  # header, 3 centralized rows, 6 federated rows, the last cut
    assert lines == 10
    with pytest.warns(FedsimWarning, match=re.escape(f"{metrics} line 10 is cut short")):
        frame = load(tmp_path / "run")
    centralized = frame[frame["stage"] == "centralized"]
    assert centralized["value"].tolist() == [0.25, 0.5, 0.75]
    federated = frame[frame["stage"] == "federated"]
    assert list(zip(federated["round"], federated["client"], federated["value"])) == [
        (0, 0, 0.25), (0, 1, 0.25), (1, 0, 0.5), (1, 1, 0.5), (2, 0, 0.75)
    ]


def test_an_interrupted_runs_rounds_load_without_the_line_it_was_writing(tmp_path):
    metrics = write_run(tmp_path / "run", [0.25, 0.5], status="interrupted")
    metrics.write_bytes(metrics.read_bytes() + b"2,centralized,,accur")
    with pytest.warns(FedsimWarning, match=re.escape(f"{metrics} line 8 is cut short")):
        frame = load(tmp_path / "run", incomplete=True)
    assert frame["round"].max() == 1 and len(frame) == 6


DAMAGE = [
    (lambda lines: lines.insert(4, "1,centralized,,loss,0.5,7"), 5, "has 6 fields where a row has 5"),
    (lambda lines: lines.insert(3, "1,centralized,,loss"), 4, "has 4 fields where a row has 5"),
    (lambda lines: lines.insert(6, "1,centralized,,loss,abc"), 7, "value 'abc' is not a number"),
    (lambda lines: lines.insert(2, "x,centralized,,loss,0.5"), 3, "round 'x' is not a whole number"),
    (lambda lines: lines.insert(8, "1,federated,0.5,loss,0.5"), 9, "client '0.5' is neither empty nor a whole number"),
    (lambda lines: lines.__setitem__(0, "round,stage,value"), 1, "is 'round,stage,value', not the header"),
]


@pytest.mark.parametrize(("damage", "line", "message"), DAMAGE, ids=["more fields", "fewer fields", "value",
                                                                    "round", "client", "header"])
def test_a_damaged_line_is_an_error_naming_the_file_and_the_line(tmp_path, damage, line, message):
    metrics = write_run(tmp_path / "run", [0.25, 0.5, 0.75])
    lines = metrics.read_text().splitlines()
    damage(lines)
    metrics.write_text("\r\n".join(lines) + "\r\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(metrics))} line {line}(:| ).*{re.escape(message)}"):
        load(tmp_path / "run")


def test_bytes_that_are_not_text_are_an_error_naming_the_line(tmp_path):
    metrics = write_run(tmp_path / "run", [0.25, 0.5])
    metrics.write_bytes(metrics.read_bytes().replace(b"0.5\r\n", b"0.5\xff\xfe\r\n", 1))
    with pytest.raises(ConfigError, match=f"^{re.escape(str(metrics))} line 3 is not UTF-8 text"):
        load(tmp_path / "run")


def fedsim_plot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "fedsim.plot_cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_fedsim_plot_names_a_damaged_file_and_line_and_plots_around_a_cut_short_one(tmp_path):
    damaged = write_run(tmp_path / "damaged", [0.25, 0.5])
    damaged.write_text(damaged.read_text().replace("0.5\n", "0.5,1\n", 1))
    result = fedsim_plot(str(tmp_path / "damaged"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    expected = f"{damaged} line 3 has 6 fields where a row has 5 (round,stage,client,metric,value); the file is damaged."
    assert result.stderr.splitlines() == [f"fedsim-plot: error: {expected}"]
    cut = write_run(tmp_path / "cut", [0.25, 0.5])
    cut.write_bytes(cut.read_bytes()[:-3])
    result = fedsim_plot(str(tmp_path / "cut"), "--out", str(tmp_path / "cut.png"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = f"{cut} line 7 is cut short (the run was stopped while writing it); read without it."
    assert result.stderr.splitlines() == [f"fedsim-plot: warning: {expected}"]
    assert (tmp_path / "cut.png").read_bytes().startswith(b"\x89PNG")


# --- an output folder that cannot be written ---------------------------------------------


def test_a_run_folder_under_a_file_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "notes").write_text("mine")
    result, _ = fedsim(*TINY, f"hydra.run.dir={tmp_path / 'notes' / 'run'}", cwd=tmp_path)
    assert_one_error_line(
        result, f"hydra.run.dir={tmp_path / 'notes' / 'run'} cannot be written: {tmp_path / 'notes'} is a file"
    )
    assert (tmp_path / "notes").read_text() == "mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_run_or_sweep_folder_in_proc_is_refused_even_for_root(tmp_path):
    folder = f"/proc/fedsim-{os.getpid()}"
    result, _ = fedsim(*TINY, f"hydra.run.dir={folder}", cwd=tmp_path)
    assert_one_error_line(result, f"hydra.run.dir={folder} cannot be written: no folder can be made in /proc")
    result, _ = fedsim("-m", *TINY, "seed=0,1", f"hydra.sweep.dir={folder}-${{seed}}", cwd=tmp_path)
    assert_one_error_line(result, f"hydra.sweep.dir={folder}-${{seed}} cannot be written: no folder can be made in /proc")
    assert not list(tmp_path.iterdir())


def test_the_default_output_folder_is_refused_when_it_cannot_be_made_where_fedsim_runs(tmp_path):
    (tmp_path / "outputs").write_text("not a folder")
    result, _ = fedsim(*TINY, cwd=tmp_path)
    assert_one_error_line(
        result, f"the output folder {tmp_path / 'outputs'} (the default hydra.run.dir) cannot be written: "
        f"{tmp_path / 'outputs'} is a file, not a folder; run fedsim from a folder you can write to"
    )
