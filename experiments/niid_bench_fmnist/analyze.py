"""Table and figure of the niid_bench Fashion-MNIST study from the runs in ``runs/`` (see run.py).

    python experiments/niid_bench_fmnist/analyze.py            # into scratch/ here (git ignores it); --out DIR
    python experiments/niid_bench_fmnist/analyze.py --update   # overwrite the committed table and figure

The table sets each cell's best-round centralized test accuracy (the baseline reports
the best round) beside the number Flower's niid_bench baseline publishes for it.
"""

from pathlib import Path

import pandas as pd

from fedsim.results import load, read_status, round_table
from fedsim.study import analysis_folder

HERE = Path(__file__).parent
PARTITIONS = ["iid", "dirichlet_0.5", "two_classes"]
TITLES = {"iid": "IID", "dirichlet_0.5": "Dirichlet(0.5)", "two_classes": "2 classes per client"}
STRATEGIES = ["fedavg", "fedprox", "scaffold", "fednova"]
# Flower's niid_bench baseline README, Fashion-MNIST: best-round test accuracy (%), mean and
# standard deviation over its seeds ("Sort and Partition (2)" is two classes per client).
PUBLISHED = {
    ("iid", "fedavg"): (89.23, 0.45), ("iid", "fedprox"): (89.42, 0.09),
    ("iid", "scaffold"): (89.33, 0.27), ("iid", "fednova"): (89.36, 0.09),
    ("dirichlet_0.5", "fedavg"): (88.09, 0.29), ("dirichlet_0.5", "fedprox"): (88.15, 0.42),
    ("dirichlet_0.5", "scaffold"): (88.44, 0.25), ("dirichlet_0.5", "fednova"): (88.22, 0.12),
    ("two_classes", "fedavg"): (78.10, 2.51), ("two_classes", "fedprox"): (78.05, 0.99),
    ("two_classes", "scaffold"): (33.80, 41.22), ("two_classes", "fednova"): (71.67, 2.34),
}


def collect() -> pd.DataFrame:
    """One row per (partition, strategy, seed, round) of the completed runs: centralized test accuracy."""
    frames = []
    for run_dir in sorted(path.parent for path in (HERE / "runs").glob("*/*/*/metrics.csv")):
        partition, strategy, seed = run_dir.relative_to(HERE / "runs").parts
        if read_status(run_dir).get("status") != "completed":  # a run in progress has no best round yet
            continue
        table = round_table(load(run_dir))[["centralized_accuracy"]]
        frames.append(table.reset_index().assign(partition=partition, strategy=strategy, seed=int(seed[5:])))
    if not frames:
        raise SystemExit("no completed run in runs/ yet: run run.py first")
    return pd.concat(frames, ignore_index=True)


def best_rounds(rounds: pd.DataFrame) -> pd.DataFrame:
    """Per run: the best round's test accuracy (%) and that round; then the mean per cell."""
    best = rounds.loc[rounds.groupby(["partition", "strategy", "seed"])["centralized_accuracy"].idxmax()]
    best = best.assign(accuracy=100 * best["centralized_accuracy"])
    return best.groupby(["partition", "strategy"]).agg(
        accuracy=("accuracy", "mean"), best_round=("round", "mean"), seeds=("seed", "nunique")
    ).reset_index()


def markdown(table: pd.DataFrame) -> str:
    """Strategies as rows, partitions as columns: fedsim's best-round accuracy / the published mean ± sd (difference)."""
    cells = {}
    for row in table.itertuples():
        mean, sd = PUBLISHED[(row.partition, row.strategy)]
        versus = f" / {mean:.2f} ± {sd:.2f} ({row.accuracy - mean:+.2f})"
        cells[(row.partition, row.strategy)] = f"{row.accuracy:.2f}{versus}"
    partitions = [p for p in PARTITIONS if p in set(table.partition)]
    lines = ["| strategy | " + " | ".join(TITLES[p] for p in partitions) + " |",
             "|---" * (len(partitions) + 1) + "|"]
    for strategy in STRATEGIES:
        lines.append(f"| {strategy} | " + " | ".join(cells.get((p, strategy), "not run yet") for p in partitions) + " |")
    seeds = sorted(set(table.seeds))
    lines += ["", f"Best-round centralized test accuracy (%), fedsim / Flower's niid_bench baseline, "
                  f"mean ± sd over its seeds (fedsim minus the baseline's mean); "
                  f"seeds per cell: {'/'.join(map(str, seeds))}."]
    return "\n".join(lines) + "\n"


def figure(rounds: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    partitions = [p for p in PARTITIONS if p in set(rounds.partition)]
    figure, axes = plt.subplots(1, len(partitions), figsize=(5.5 * len(partitions), 4.2), sharey=True,
                                constrained_layout=True, squeeze=False)
    for axis, partition in zip(axes[0], partitions):
        for strategy in STRATEGIES:
            runs = rounds[(rounds.partition == partition) & (rounds.strategy == strategy)]
            if not runs.empty:
                curve = runs.groupby("round")["centralized_accuracy"].mean()
                axis.plot(curve.index, 100 * curve.values, label=strategy,
                          color=f"C{STRATEGIES.index(strategy)}")  # one colour per strategy in every panel
        axis.set_title(TITLES[partition])
        axis.set_xlabel("round")
    axes[0][0].set_ylabel("centralized test accuracy (%)")
    axes[0][0].legend()
    figure.savefig(path, dpi=120)


def main() -> None:
    out = analysis_folder(HERE, __doc__.splitlines()[0])
    rounds = collect()
    table = best_rounds(rounds)
    table.to_csv(out / "results.csv", index=False)
    (out / "results.md").write_text(markdown(table))
    figure(rounds, out / "accuracy.png")
    print(markdown(table))


if __name__ == "__main__":
    main()
