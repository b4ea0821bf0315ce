"""The ``fedsim-plot`` command: a figure of runs or sweeps, drawn from their results files."""

import argparse
import sys
import warnings
from pathlib import Path

from fedsim.config.checks import ConfigError, FedsimWarning

KINDS = ("curves", "clients")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fedsim-plot",
        description="Plot a metric per round from fedsim run or sweep folders (PNG, PDF or SVG).",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run folders, sweep folders, or both")
    parser.add_argument("--metric", default="accuracy", help="recorded metric (default: accuracy)")
    parser.add_argument(
        "--stage", help="centralized, federated, train or system (default: the first that records the metric)"
    )
    parser.add_argument(
        "--hue",
        default="method",
        help="config keys giving one curve per value, commas between several, e.g. strategy,strategy.proximal_mu "
        "or partitioner.alpha; none: one curve of all runs (default: method, the method's label or else the strategy)",
    )
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep only the runs whose config KEY equals VALUE (read as YAML, numbers compared as numbers), "
        "e.g. partitioner.alpha=0.1; repeat it and every filter must hold",
    )
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default="curves",
        help="curves: mean ± std over runs per round; clients: per-client distribution per round",
    )
    parser.add_argument("--out", help="figure file (default: STAGE_METRIC.png in the one PATH, or here)")
    return parser.parse_args(argv)


def plot(args: argparse.Namespace) -> Path:
    """Draw the figure ``args`` ask for and return where it was written."""
    from fedsim import plots
    from fedsim.results import load

    if args.out is not None:
        plots.check_figure_path(args.out)  # before loading anything
    frame = load(args.paths if len(args.paths) > 1 else args.paths[0], where=args.where)
    if frame.empty:
        raise ConfigError(f"no rounds recorded in {', '.join(args.paths)}: the metrics.csv files there hold no rows.")
    if args.kind == "clients":
        stage = args.stage or "federated"
        axis = plots.plot_client_distribution(frame, args.metric, stage)
        name = f"clients_{stage}_{args.metric}.png"
    else:
        stage = plots.metric_stage(frame, args.metric, args.stage)
        hue = None if args.hue.strip().lower() == "none" else args.hue
        axis = plots.plot_metric(frame, args.metric, stage, hue)
        name = f"{stage}_{args.metric}.png"
    folder = Path(args.paths[0]) if len(args.paths) == 1 else Path.cwd()
    return plots.save_figure(axis, args.out or folder / name)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``fedsim-plot`` console script."""
    args = parse_args(argv)
    out, failure = None, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            out = plot(args)
        except ConfigError as error:
            failure = error
    for warning in caught:  # first: they may explain the error
        if issubclass(warning.category, UserWarning):
            kind = "warning" if issubclass(warning.category, FedsimWarning) else "note"
            print(f"fedsim-plot: {kind}: {warning.message}", file=sys.stderr)
    if failure is not None:
        print(f"fedsim-plot: error: {failure}", file=sys.stderr)
        sys.exit(2)
    print(out)


if __name__ == "__main__":
    main()
