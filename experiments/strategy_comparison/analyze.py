"""Table and figure of the strategy comparison from the runs in ``runs/`` (see run.py).

    python experiments/strategy_comparison/analyze.py            # into scratch/ here (git ignores it); --out DIR
    python experiments/strategy_comparison/analyze.py --update   # overwrite the committed table and figure
"""

from pathlib import Path

import pandas as pd

from fedsim.results import load, round_table
from fedsim.study import analysis_folder

HERE = Path(__file__).parent


def collect() -> pd.DataFrame:
    """One row per (strategy, seed, round): centralized and federated accuracy, loss."""
    frames = []
    for metrics in sorted((HERE / "runs").glob("*/*/metrics.csv")):
        strategy, seed = metrics.parent.relative_to(HERE / "runs").parts
        table = round_table(load(metrics.parent))
        columns = [c for c in ("centralized_accuracy", "centralized_loss", "federated_accuracy") if c in table]
        frames.append(table[columns].reset_index().assign(strategy=strategy, seed=int(seed.split("_")[1])))
    return pd.concat(frames, ignore_index=True)


def summary_table(rounds: pd.DataFrame) -> pd.DataFrame:
    last = rounds["round"].max()
    final = rounds[rounds["round"] == last]
    table = final.groupby("strategy").agg(
        accuracy_mean=("centralized_accuracy", "mean"),
        accuracy_std=("centralized_accuracy", "std"),
        loss_mean=("centralized_loss", "mean"),
        loss_std=("centralized_loss", "std"),
        seeds=("seed", "nunique"),
    )
    best = rounds.groupby(["strategy", "seed"])["centralized_accuracy"].max().groupby("strategy").mean()
    table["best_accuracy_mean"] = best
    return table.sort_values("accuracy_mean", ascending=False).reset_index()


def markdown(table: pd.DataFrame) -> str:
    lines = [
        "| strategy | final test accuracy | final test loss | best test accuracy (mean) | seeds |",
        "|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        lines.append(
            f"| {row.strategy} | {row.accuracy_mean:.4f} ± {row.accuracy_std:.4f} "
            f"| {row.loss_mean:.4f} ± {row.loss_std:.4f} | {row.best_accuracy_mean:.4f} | {row.seeds} |"
        )
    return "\n".join(lines) + "\n"


def figure(rounds: pd.DataFrame, order: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10.5, 5.5), constrained_layout=True)
    colours = plt.get_cmap("tab20")
    for index, strategy in enumerate(order):
        curve = rounds[rounds.strategy == strategy].groupby("round")["centralized_accuracy"].agg(["mean", "std"])
        axis.plot(curve.index, curve["mean"], label=strategy, color=colours(index))
        axis.fill_between(curve.index, curve["mean"] - curve["std"], curve["mean"] + curve["std"],
                          color=colours(index), alpha=0.15)
    axis.set_xlabel("round")
    axis.set_ylabel("centralized test accuracy")
    axis.set_title("digits, 20 clients, Dirichlet(0.1), MLP: mean ± std over seeds")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    out = analysis_folder(HERE, __doc__.splitlines()[0], argv)
    rounds = collect()
    table = summary_table(rounds)
    table.to_csv(out / "results.csv", index=False, float_format="%.4f")
    (out / "results.md").write_text(markdown(table))
    figure(rounds, list(table["strategy"]), out / "accuracy.png")
    print(table.to_string(index=False))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
