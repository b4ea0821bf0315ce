"""Per-round figures drawn from a run's results files only."""

from pathlib import Path

from fedsim.results import load, round_table, run_columns

FIGURE_FILE = "rounds.png"
STAGE_LABELS = {
    "centralized": "centralized (test split)",
    "federated": "federated (clients' data)",
    "train": "local training",
}


def plot_run(run_dir: str | Path) -> Path:
    """Draw accuracy and loss per round (centralized and federated) into ``rounds.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    run_dir = Path(run_dir)
    table = round_table(load(run_dir))
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for axis, metric in zip(axes, ("accuracy", "loss")):
        for stage, label in STAGE_LABELS.items():
            column = f"{stage}_{metric}"
            if column in table:
                series = table[column].dropna()
                axis.plot(series.index, series.values, marker=".", label=label)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("round")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    columns = run_columns(run_dir)
    named = [str(columns[group]) for group in ("strategy", "dataset", "partitioner", "model") if group in columns]
    figure.suptitle(" · ".join(named) if named else run_dir.name)
    path = run_dir / FIGURE_FILE
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
