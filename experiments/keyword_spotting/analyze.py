"""Table and figure of the keyword-spotting study from the runs in ``runs/`` (see run.py).

    python experiments/keyword_spotting/analyze.py            # into scratch/ here (git ignores it); --out DIR
    python experiments/keyword_spotting/analyze.py --update   # overwrite the committed results.md, results.csv, accuracy.png

Accuracy is the global model's on the test speakers (never heard in training), after
each round; the table gives the last round's and the mean of the last five (the curves
are noisy) as mean +- standard deviation over the seeds, and the first round at which
the seeds' mean reaches 80% and 90%. results.csv holds every round's accuracy per method
(mean, standard deviation, seeds).
"""

from pathlib import Path

import pandas as pd

from fedsim.results import load, round_table
from fedsim.study import analysis_folder

HERE = Path(__file__).parent
METHODS = ["fedavg", "fedprox", "scaffold", "centralized"]
TEST_SPEAKERS = 10  # dataset.num_test_speakers of the study
TITLES = {"fedavg": "FedAvg", "fedprox": "FedProx (mu 0.01)", "scaffold": "SCAFFOLD", "centralized": "centralized"}


def collect() -> pd.DataFrame:
    """One row per (method, seed, round) of the completed runs: centralized test accuracy."""
    frames = []
    for run_dir in sorted(path.parent for path in (HERE / "runs").glob("*/*/metrics.csv")):
        method, seed = run_dir.relative_to(HERE / "runs").parts
        try:
            table = round_table(load(run_dir))[["centralized_accuracy"]]
        except Exception:  # noqa: BLE001  # pylint: disable=broad-exception-caught  (not completed yet)
            continue
        frames.append(table.reset_index().assign(method=method, seed=int(seed.removeprefix("seed_"))))
    if not frames:
        raise SystemExit("no completed run in runs/ yet: run run.py first")
    return pd.concat(frames, ignore_index=True)


def per_round(rounds: pd.DataFrame) -> pd.DataFrame:
    """Every round's accuracy (%) per method: mean and standard deviation over the seeds."""
    table = rounds.assign(accuracy=100 * rounds["centralized_accuracy"]).groupby(["method", "round"])["accuracy"]
    return table.agg(mean="mean", std="std", seeds="count").reset_index()


def summary(rounds: pd.DataFrame) -> pd.DataFrame:
    """Per method: last round's and last five rounds' accuracy (mean, std over seeds), rounds to 80% and 90%."""
    rows = []
    curves = per_round(rounds)
    for method in [m for m in METHODS if m in set(rounds.method)]:
        runs = rounds[rounds.method == method]
        last = runs["round"].max()
        final = 100 * runs[runs["round"] == last].groupby("seed")["centralized_accuracy"].mean()
        tail = 100 * runs[runs["round"] > last - 5].groupby("seed")["centralized_accuracy"].mean()
        curve = curves[curves.method == method].set_index("round")["mean"]
        reached = {level: next((int(r) for r, value in curve.items() if value >= level), None) for level in (80, 90)}
        rows.append({
            "method": method, "rounds": int(last), "seeds": len(final),
            "final_mean": final.mean(), "final_std": final.std(), "last5_mean": tail.mean(), "last5_std": tail.std(),
            "round_to_80": reached[80], "round_to_90": reached[90],
        })
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    def round_or_dash(value) -> str:
        return "-" if pd.isna(value) else str(int(value))

    lines = [
        "| method | final accuracy (%) | last 5 rounds (%) | round to 80% | round to 90% | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        lines.append(
            f"| {TITLES[row.method]} | {row.final_mean:.1f} +- {row.final_std:.1f} | {row.last5_mean:.1f} +- "
            f"{row.last5_std:.1f} | {round_or_dash(row.round_to_80)} | {round_or_dash(row.round_to_90)} | {row.seeds} |"
        )
    lines += ["", f"Test accuracy on the {TEST_SPEAKERS} test speakers (never heard in training) after round "
                  f"{int(table.rounds.max())}, mean +- standard deviation over the seeds; rounds to a level: the first "
                  "round at which the seeds' mean accuracy reaches it (- : not within the run)."]
    return "\n".join(lines) + "\n"



def figure(rounds: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = per_round(rounds)
    fig, axis = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    for method in [m for m in METHODS if m in set(curves.method)]:
        curve = curves[curves.method == method]
        axis.plot(curve["round"], curve["mean"], label=TITLES[method])
        axis.fill_between(curve["round"], curve["mean"] - curve["std"].fillna(0), curve["mean"] + curve["std"].fillna(0),
                          alpha=0.15)
    axis.set_xlabel("round (centralized: epoch)")
    axis.set_ylabel("test accuracy on unseen speakers (%)")
    axis.set_ylim(0, 100)
    axis.legend()
    fig.savefig(path, dpi=120)


def main() -> None:
    out = analysis_folder(HERE, __doc__.splitlines()[0])
    rounds = collect()
    table = summary(rounds)
    per_round(rounds).to_csv(out / "results.csv", index=False, float_format="%.2f")
    (out / "results.md").write_text(markdown(table))
    figure(rounds, out / "accuracy.png")
    print(markdown(table))


if __name__ == "__main__":
    main()
