"""Table and figure of the FedProx study from the runs in ``runs/`` (see run.py).

    python experiments/fedprox_synthetic/analyze.py            # into scratch/ here (git ignores it); --out DIR
    python experiments/fedprox_synthetic/analyze.py --update   # overwrite the committed table and figure
"""

from pathlib import Path

import pandas as pd

from fedsim.results import load, round_table
from fedsim.study import analysis_folder

HERE = Path(__file__).parent
DATASETS = ["synthetic_iid", "synthetic_0_0", "synthetic_0.5_0.5", "synthetic_1_1"]
METHODS = {"fedavg": "FedAvg (drops stragglers)", "fedprox_mu0": "FedProx, mu=0", "fedprox_mu1": "FedProx, mu=1"}


def collect() -> pd.DataFrame:
    """One row per (dataset, method, stragglers, seed, round) with training loss and test accuracy."""
    frames = []
    for metrics in sorted((HERE / "runs").glob("*/*/*/*/metrics.csv")):
        run_dir = metrics.parent
        dataset, method, stragglers, seed = run_dir.relative_to(HERE / "runs").parts
        table = round_table(load(run_dir))[["centralized_train_loss", "centralized_accuracy"]]
        table = table.reset_index().assign(
            dataset=dataset, method=method, stragglers=float(stragglers.split("_")[1]), seed=int(seed.split("_")[1])
        )
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def summary_table(rounds: pd.DataFrame) -> pd.DataFrame:
    final = rounds[rounds["round"] == rounds["round"].max()]
    grouped = final.groupby(["dataset", "stragglers", "method"])
    table = grouped.agg(
        test_accuracy_mean=("centralized_accuracy", "mean"),
        test_accuracy_std=("centralized_accuracy", "std"),
        train_loss_mean=("centralized_train_loss", "mean"),
        train_loss_std=("centralized_train_loss", "std"),
        seeds=("seed", "nunique"),
    )
    return table.reset_index()


def markdown(table: pd.DataFrame) -> str:
    """The summary as a Markdown table with mean ± std cells."""
    lines = ["| dataset | stragglers | method | test accuracy | training loss | seeds |", "|---|---|---|---|---|---|"]
    for row in table.itertuples():
        lines.append(
            f"| {row.dataset} | {row.stragglers:.0%} | {METHODS[row.method]} "
            f"| {row.test_accuracy_mean:.4f} ± {row.test_accuracy_std:.4f} "
            f"| {row.train_loss_mean:.4f} ± {row.train_loss_std:.4f} | {row.seeds} |"
        )
    return "\n".join(lines) + "\n"


def figure(rounds: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted(rounds["stragglers"].unique())
    figure, axes = plt.subplots(len(levels), len(DATASETS), figsize=(4 * len(DATASETS), 3 * len(levels)),
                                sharex=True, squeeze=False, constrained_layout=True)
    for row, level in enumerate(levels):
        for column, dataset in enumerate(DATASETS):
            axis = axes[row][column]
            for method, label in METHODS.items():
                runs = rounds[(rounds.dataset == dataset) & (rounds.method == method) & (rounds.stragglers == level)]
                if runs.empty:
                    continue
                curve = runs.groupby("round")["centralized_train_loss"].agg(["mean", "std"])
                axis.plot(curve.index, curve["mean"], label=label)
                axis.fill_between(curve.index, curve["mean"] - curve["std"], curve["mean"] + curve["std"], alpha=0.2)
            axis.set_title(f"{dataset}, {level:.0%} stragglers", fontsize=10)
            axis.grid(alpha=0.3)
            if column == 0:
                axis.set_ylabel("training loss")
            if row == len(levels) - 1:
                axis.set_xlabel("round")
    axes[0][0].legend(fontsize=8)
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    out = analysis_folder(HERE, __doc__.splitlines()[0], argv)
    rounds = collect()
    table = summary_table(rounds)
    table.to_csv(out / "results.csv", index=False, float_format="%.4f")
    (out / "results.md").write_text(markdown(table))
    figure(rounds, out / "training_loss.png")
    print(table.to_string(index=False))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
