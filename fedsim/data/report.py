"""The ``fedsim-data`` command: how a dataset is split over clients, before anything runs.

``fedsim-data [--output FILE] OVERRIDES...`` takes the overrides ``fedsim`` takes
(``dataset=...``, ``partitioner=...``, ``num_clients=...``), prints each client's number
of examples (summary statistics only, for many clients) and draws a heatmap of the
label counts per client.
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from flwr_datasets.partitioner import Partitioner
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from fedsim.config import ConfigError, register_schemas, require
from fedsim.data.dataset import FederatedData

MAX_TABLE_ROWS = 40


def label_counts(data: FederatedData, partitioner: Partitioner) -> np.ndarray:
    """Examples of each class held by each client: shape (clients, classes)."""
    counts = np.zeros((partitioner.num_partitions, data.num_classes), dtype=np.int64)
    for partition_id in range(partitioner.num_partitions):
        labels = partitioner.load_partition(partition_id).with_format("numpy")[data.label_column]
        counts[partition_id] = np.bincount(np.asarray(labels, dtype=np.int64), minlength=data.num_classes)
    return counts


def client_table(counts: np.ndarray) -> Table:
    """One row per client: examples, classes present, and the share of its largest class."""
    table = Table(title="examples per client")
    for column in ("client", "examples", "classes", "largest class"):
        table.add_column(column, justify="right")
    for client, row in enumerate(counts):
        total = int(row.sum())
        table.add_row(
            str(client), str(total), str(int((row > 0).sum())), f"{int(row.argmax())} ({row.max() / total:.0%})"
        )
    return table


def summary_table(counts: np.ndarray) -> Table:
    """Statistics over clients of their number of examples and of classes present."""
    sizes = counts.sum(axis=1)
    classes = (counts > 0).sum(axis=1)
    table = Table(title=f"{len(counts)} clients, {int(sizes.sum())} training examples")
    for column in ("per client", "min", "median", "mean", "max", "std"):
        table.add_column(column, justify="right")
    for name, values in (("examples", sizes), ("classes", classes)):
        table.add_row(
            name, str(int(values.min())), f"{np.median(values):g}", f"{values.mean():.1f}", str(int(values.max())),
            f"{values.std():.1f}",
        )
    return table


def draw_heatmap(counts: np.ndarray, path: Path, title: str) -> None:
    """Save a clients x classes heatmap of ``counts`` to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    num_clients, num_classes = counts.shape
    figure, axes = plt.subplots(figsize=(min(4 + 0.3 * num_classes, 16), min(2 + 0.25 * num_clients, 12)))
    image = axes.imshow(counts, aspect="auto", interpolation="nearest", cmap="viridis")
    figure.colorbar(image, ax=axes, label="examples")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("class")
    axes.set_ylabel("client")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def partition_counts(cfg: DictConfig) -> np.ndarray:
    """The label counts per client of the dataset and partitioner ``cfg`` configures."""
    from fedsim.data.partitioners import build_partitioner
    from fedsim.instantiate import build

    data = build(cfg.dataset)
    partitioner = build_partitioner(cfg.partitioner, data, cfg.num_clients, cfg.seed)
    return label_counts(data, partitioner)


def report(cfg: DictConfig, output: Path, title: str, console: Console | None = None) -> np.ndarray:
    """Print the clients' sizes for ``cfg`` and draw the label heatmap into ``output``."""
    console = console or Console(highlight=False)
    counts = partition_counts(cfg)
    if len(counts) <= MAX_TABLE_ROWS:
        console.print(client_table(counts))
    console.print(summary_table(counts))
    draw_heatmap(counts, output, title)
    console.print(f"label heatmap: {output}")
    return counts


def compose_config(overrides: list[str]) -> DictConfig:
    """The config ``fedsim OVERRIDES`` would run."""
    from hydra import compose, initialize_config_module

    register_schemas()
    with initialize_config_module("fedsim.conf", version_base=None):
        return compose("config", overrides=overrides)


def check_output(path: Path) -> None:
    """Raise ConfigError unless the heatmap file ``path`` ends in a figure format fedsim writes."""
    from fedsim.plots import FIGURE_FORMATS

    require(
        path.suffix.lower() in FIGURE_FORMATS,
        f"--output must end in {', '.join(FIGURE_FORMATS)} (got '{path}').",
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``fedsim-data`` console script."""
    from hydra.errors import HydraException

    parser = argparse.ArgumentParser(prog="fedsim-data", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for fedsim (partitioner=iid ...)")
    parser.add_argument(
        "--output", type=Path, default=Path("partitions.png"), help="heatmap file (.png, .pdf or .svg)"
    )
    args = parser.parse_args(argv)
    # flwr-datasets warns at every redraw of a Dirichlet split; the table shows the outcome
    warnings.filterwarnings("ignore", category=UserWarning, module=r"flwr_datasets\.")
    try:
        cfg = compose_config(args.overrides)
    except HydraException as error:
        print(f"fedsim-data: error: {error}", file=sys.stderr)
        sys.exit(1)
    try:
        from fedsim.plan import check_options

        check_output(args.output)  # before the dataset is loaded and split, which can take a while
        check_options(cfg)
        report(cfg, args.output, " ".join(args.overrides) or "default config")
    except ConfigError as error:
        print(f"fedsim-data: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
