"""Table and figure of the Fashion-MNIST non-IID study from the runs in ``runs/`` (see run.py).

    python experiments/niid_fashion_mnist/analyze.py            # into scratch/ here (git ignores it); --out DIR
    python experiments/niid_fashion_mnist/analyze.py --update   # overwrite the committed table and figure
"""

from pathlib import Path

import pandas as pd

from fedsim.results import load, round_table
from fedsim.study import analysis_folder

HERE = Path(__file__).parent
PARTITIONS = ["iid", "dirichlet_0.5", "dirichlet_0.1", "two_classes"]
TITLES = {
    "iid": "IID",
    "dirichlet_0.5": "Dirichlet(0.5)",
    "dirichlet_0.1": "Dirichlet(0.1)",
    "two_classes": "2 classes per client",
}
STRATEGIES = ["fedavg", "fedprox", "scaffold", "fednova"]


def collect() -> pd.DataFrame:
    """One row per (partition, strategy, seed, round): centralized test accuracy and loss."""
    frames = []
    for metrics in sorted((HERE / "runs").glob("*/*/*/metrics.csv")):
        partition, strategy, seed = metrics.parent.relative_to(HERE / "runs").parts
        table = round_table(load(metrics.parent))[["centralized_accuracy", "centralized_loss"]]
        frames.append(table.reset_index().assign(partition=partition, strategy=strategy, seed=int(seed[5:])))
    return pd.concat(frames, ignore_index=True)


def summary_table(rounds: pd.DataFrame) -> pd.DataFrame:
    """Final-round test accuracy per (partition, strategy): mean, std and number of seeds."""
    final = rounds[rounds["round"] == rounds["round"].max()]
    return final.groupby(["partition", "strategy"]).agg(
        accuracy_mean=("centralized_accuracy", "mean"),
        accuracy_std=("centralized_accuracy", "std"),
        loss_mean=("centralized_loss", "mean"),
        seeds=("seed", "nunique"),
    ).reset_index()


def markdown(table: pd.DataFrame) -> str:
    """Strategies as rows, partitions as columns: final test accuracy mean ± std."""
    cells = {(row.partition, row.strategy): f"{row.accuracy_mean:.4f} ± {row.accuracy_std:.4f}"
             for row in table.itertuples()}
    partitions = [p for p in PARTITIONS if p in set(table.partition)]
    lines = ["| strategy | " + " | ".join(TITLES[p] for p in partitions) + " |",
             "|---" * (len(partitions) + 1) + "|"]
    for strategy in STRATEGIES:
        lines.append(f"| {strategy} | " + " | ".join(cells.get((p, strategy), "-") for p in partitions) + " |")
    seeds = sorted(set(table.seeds))
    lines.append("")
    lines.append(f"Final-round centralized test accuracy, mean ± std over {'/'.join(map(str, seeds))} seeds.")
    return "\n".join(lines) + "\n"


def figure(rounds: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(1, len(PARTITIONS), figsize=(16, 4.2), sharey=True, constrained_layout=True)
    for axis, partition in zip(axes, PARTITIONS):
        for strategy in STRATEGIES:
            runs = rounds[(rounds.partition == partition) & (rounds.strategy == strategy)]
            if runs.empty:
                continue
            curve = runs.groupby("round")["centralized_accuracy"].agg(["mean", "std"]).fillna(0.0)
            line, = axis.plot(curve.index, curve["mean"], label=strategy)
            axis.fill_between(curve.index, curve["mean"] - curve["std"], curve["mean"] + curve["std"],
                              color=line.get_color(), alpha=0.2)
        axis.set_title(TITLES[partition])
        axis.set_xlabel("round")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("centralized test accuracy")
    axes[0].legend(loc="lower right")
    figure.suptitle("Fashion-MNIST, 10 clients, all per round, 2NN MLP: mean ± std over seeds")
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    out = analysis_folder(HERE, __doc__.splitlines()[0], argv)
    rounds = collect()
    table = summary_table(rounds)
    table.to_csv(out / "results.csv", index=False, float_format="%.4f")
    (out / "results.md").write_text(markdown(table))
    figure(rounds, out / "accuracy.png")
    print(markdown(table))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
