"""Run one configured simulation: check, prepare, run on the engine, save, plot."""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fedsim.apps import build_client_app, build_server_app, load_federation
from fedsim.config import validate
from fedsim.instantiate import build
from fedsim.models import build_model
from fedsim.plots import plot_run
from fedsim.results import save_config
from fedsim.terminal import RoundPrinter


@dataclass
class RunSummary:
    """What a finished run reports: its folder, final aggregate metrics, wall time."""

    run_dir: Path
    final: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    figure: Path | None = None


def run(cfg: DictConfig, run_dir: str | Path, choices: dict[str, str] | None = None, quiet: bool = False) -> RunSummary:
    """Run the simulation ``cfg`` describes and write its results into ``run_dir``.

    Every value is checked (``ConfigError`` with one sentence) and the data, partitions
    and model are prepared before any training starts.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    logging.getLogger("flwr").setLevel(logging.INFO if cfg.verbose else logging.WARNING)
    validate(cfg)
    federation = load_federation(cfg)
    build_model(cfg.model, federation.data.input_shape, federation.data.num_classes, cfg.seed)
    engine = build(cfg.engine)

    save_config(run_dir, OmegaConf.to_container(cfg, resolve=True), choices or {})
    printer = RoundPrinter(cfg.num_rounds, quiet=quiet)
    server_app = build_server_app(cfg, run_dir, printer.round_finished)
    engine.run(server_app, build_client_app(cfg), cfg.num_clients)

    summary = RunSummary(run_dir=run_dir, final=printer.last, seconds=time.perf_counter() - started)
    summary.figure = plot_run(run_dir)
    printer.summary(summary.run_dir, summary.seconds)
    return summary
