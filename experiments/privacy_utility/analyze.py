"""Table and figure of the privacy-utility study from the runs in ``runs/`` (see run.py).

    python experiments/privacy_utility/analyze.py            # into scratch/ here (git ignores it); --out DIR
    python experiments/privacy_utility/analyze.py --update   # overwrite the committed table and figure
"""

from pathlib import Path

import pandas as pd

from fedsim.results import load, round_table
from fedsim.study import analysis_folder

HERE = Path(__file__).parent
LABELS = {
    "none": "no privacy",
    "local_dp": "local DP (DP-SGD, example-level)",
    "central_dp": "central DP (fixed clipping, client-level)",
}


def collect() -> pd.DataFrame:
    """One row per run: mechanism, noise multiplier, seed, final test accuracy and epsilon."""
    rows = []
    for metrics in sorted((HERE / "runs").glob("*/*/*/metrics.csv")):
        run_dir = metrics.parent
        mechanism, noise, seed = run_dir.relative_to(HERE / "runs").parts
        last = round_table(load(run_dir)).iloc[-1]
        rows.append(
            {
                "mechanism": mechanism,
                "noise": float(noise.split("_")[1]),
                "seed": int(seed.split("_")[1]),
                "accuracy": last["centralized_accuracy"],
                "epsilon": last.get("train_epsilon", float("inf")) if mechanism != "none" else float("inf"),
            }
        )
    return pd.DataFrame(rows)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    grouped = runs.groupby(["mechanism", "noise"])
    table = grouped.agg(
        epsilon=("epsilon", "max"),
        accuracy_mean=("accuracy", "mean"),
        accuracy_std=("accuracy", "std"),
        seeds=("seed", "nunique"),
    )
    table = table.reset_index()
    table["order"] = table.mechanism.map(list(LABELS).index)
    return table.sort_values(["order", "noise"]).drop(columns="order")


def markdown(table: pd.DataFrame) -> str:
    lines = [
        "| mechanism | noise multiplier | epsilon (delta = 1e-5) | test accuracy | seeds |",
        "|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        epsilon = "∞" if row.epsilon == float("inf") else f"{row.epsilon:.3g}"
        lines.append(
            f"| {LABELS[row.mechanism]} | {row.noise:g} | {epsilon} "
            f"| {row.accuracy_mean:.4f} ± {row.accuracy_std:.4f} | {row.seeds} |"
        )
    return "\n".join(lines) + "\n"


def figure(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
    for mechanism, marker in (("local_dp", "o"), ("central_dp", "s")):
        rows = table[table.mechanism == mechanism].sort_values("epsilon")
        axis.errorbar(rows.epsilon, rows.accuracy_mean, yerr=rows.accuracy_std, marker=marker, capsize=3,
                      label=LABELS[mechanism])
        for row in rows.itertuples():
            axis.annotate(f"σ={row.noise:g}", (row.epsilon, row.accuracy_mean), textcoords="offset points",
                          xytext=(4, -10), fontsize=7)
    baseline = table[table.mechanism == "none"]
    if not baseline.empty:
        axis.axhline(baseline.accuracy_mean.iloc[0], color="grey", linestyle="--", label=LABELS["none"])
    axis.axhline(0.1, color="grey", linestyle=":", label="chance")
    axis.set_xscale("log")
    axis.set_xlabel("epsilon after 30 rounds (delta = 1e-5; log scale)")
    axis.set_ylabel("test accuracy")
    axis.set_title("digits, 20 clients, logistic regression: privacy against utility", fontsize=10)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    out = analysis_folder(HERE, __doc__.splitlines()[0], argv)
    runs = collect()
    table = summary_table(runs)
    runs.sort_values(["mechanism", "noise", "seed"]).to_csv(out / "results.csv", index=False)
    (out / "results.md").write_text(markdown(table))
    figure(table, out / "privacy_utility.png")
    print(markdown(table))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
