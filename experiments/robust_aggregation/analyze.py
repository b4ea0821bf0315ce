"""Tables and heatmap of the robust-aggregation study from the runs in ``runs/`` (see run.py).

    python experiments/robust_aggregation/analyze.py            # into scratch/ here (git ignores it); --out DIR
    python experiments/robust_aggregation/analyze.py --update   # overwrite the committed tables and figure

Every number is the final (30th) round's centralized test accuracy (and, under the
backdoor, attack success rate), mean ± std over the seeds.
"""

from pathlib import Path

import pandas as pd
from run import (
    ATTACKS,
    CENTERED_CLIPPING_TAU,
    CENTERED_CLIPPING_TIGHT_TAU,
    FRACTIONS,
    NORM_CLIPPING_MAX_NORM,
    backdoor_strategies,
    malicious,
    strategies,
    untolerated,
)

from fedsim.results import final_table, load
from fedsim.study import analysis_folder

HERE = Path(__file__).parent
ALL_FRACTIONS = [0.0, *FRACTIONS]
LABELS = {
    "fedavg": "FedAvg",
    "fedmedian": "Median",
    "fedtrimmedavg": "TrimmedMean (beta = f/n)",
    "krum": "Krum",
    "multikrum": "Multi-Krum",
    "bulyan": "Bulyan",
    "centered_clipping": f"CenteredClipping (tau {CENTERED_CLIPPING_TAU})",
    "centered_clipping_tau_1": "CenteredClipping (tau 1.0, default)",
    "centered_clipping_tight": f"CenteredClipping (tau {CENTERED_CLIPPING_TIGHT_TAU})",
    "rfa": "RFA",
    "norm_clipping": f"NormClipping (max_norm {NORM_CLIPPING_MAX_NORM})",
    "norm_clipping_max_norm_1": "NormClipping (max_norm 1.0, default)",
}


def collect() -> pd.DataFrame:
    """One row per completed run: attack, fraction, strategy, seed, final accuracy and attack success rate."""
    frame = load(HERE / "runs")
    final = final_table(frame, "accuracy")
    success = final_table(frame[frame["attack"] == "backdoor"], "attack_success_rate")
    final = final.merge(success[["run", "attack_success_rate"]], on="run", how="left")
    names = final["run"].map(lambda run: Path(run).relative_to(HERE / "runs").parts)
    scenario = names.str[0]
    final["strategy"] = names.str[1]
    final["seed"] = names.str[2].str.removeprefix("seed_").astype(int)
    final["attack"] = scenario.map(lambda s: "none" if s == "none" else s.rsplit("_", 1)[0])
    final["fraction"] = scenario.map(lambda s: 0.0 if s == "none" else float(s.rsplit("_", 1)[1]))
    return final[["attack", "fraction", "strategy", "seed", "accuracy", "attack_success_rate"]]


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per (attack, fraction, strategy); the cells not run say why."""
    table = runs.groupby(["attack", "fraction", "strategy"]).agg(
        accuracy_mean=("accuracy", "mean"),
        accuracy_std=("accuracy", "std"),
        attack_success_rate_mean=("attack_success_rate", "mean"),
        attack_success_rate_std=("attack_success_rate", "std"),
        seeds=("seed", "nunique"),
    ).reset_index()
    skipped = [
        {"attack": attack, "fraction": fraction, "strategy": strategy, "seeds": 0,
         "note": untolerated(strategy, malicious(fraction))}
        for attack in ATTACKS
        for fraction in FRACTIONS
        for strategy in strategies(malicious(fraction))
        if untolerated(strategy, malicious(fraction))
    ]
    return pd.concat([table, pd.DataFrame(skipped)], ignore_index=True)


def cell(row: pd.Series | None, metric: str = "accuracy") -> str:
    if row is None:
        return "-"
    if row["seeds"] == 0:
        return row["note"]
    return f"{row[f'{metric}_mean']:.3f} ± {row[f'{metric}_std']:.3f}"


def lookup(table: pd.DataFrame, attack: str, fraction: float, strategy: str) -> pd.Series | None:
    """The row of a cell; the 0% column of every attack but the backdoor is the attack-free run."""
    attack = "none" if fraction == 0 and attack != "backdoor" else attack
    rows = table[(table.attack == attack) & (table.fraction == fraction) & (table.strategy == strategy)]
    return None if rows.empty else rows.iloc[0]


def percent(fraction: float) -> str:
    return f"{fraction:.0%}"


def markdown(table: pd.DataFrame) -> str:
    seeds = table.loc[table.seeds > 0, "seeds"]
    seed_text = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()} to {seeds.max()}"
    header = [f"{attack} {percent(fraction)}" if fraction == 0 else percent(fraction)
              for attack in ATTACKS for fraction in ALL_FRACTIONS]
    lines = [
        (
            "Final-round (30) centralized test accuracy, mean ± std over "
            f"{seed_text} seeds; the 0% column of every attack is the same attack-free run."
        ),
        "",
        "| strategy | " + " | ".join(header) + " |",
        "|---" * (len(header) + 1) + "|",
    ]
    for strategy in strategies(0):
        cells = [cell(lookup(table, attack, fraction, strategy)) for attack in ATTACKS for fraction in ALL_FRACTIONS]
        lines.append(f"| {LABELS[strategy]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        (
            "Backdoor (attack=backdoor at its defaults): final-round clean test accuracy and attack success "
            "rate (the share of triggered test images, label not the target, classified as the target), "
            f"mean ± std over {seed_text} seeds; at 0% no client is malicious."
        ),
        "",
        "| strategy | " + " | ".join(f"accuracy {percent(f)}" for f in ALL_FRACTIONS) + " | "
        + " | ".join(f"success {percent(f)}" for f in ALL_FRACTIONS) + " |",
        "|---" * (2 * len(ALL_FRACTIONS) + 1) + "|",
    ]
    for strategy in backdoor_strategies(0):
        rows = [lookup(table, "backdoor", fraction, strategy) for fraction in ALL_FRACTIONS]
        cells = [cell(row) for row in rows] + [cell(row, "attack_success_rate") for row in rows]
        lines.append(f"| {LABELS[strategy]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(table: pd.DataFrame, path: Path) -> None:
    """One heatmap per attack: strategies x fractions, final accuracy (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    order = list(strategies(0))
    figure, axes = plt.subplots(1, len(ATTACKS), figsize=(19, 5.2), sharey=True, constrained_layout=True)
    for axis, attack in zip(axes, ATTACKS):
        rows = [[lookup(table, attack, fraction, strategy) for fraction in ALL_FRACTIONS] for strategy in order]
        values = np.array([[np.nan if r is None or r["seeds"] == 0 else r["accuracy_mean"] for r in row]
                           for row in rows])
        image = axis.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        axis.set_facecolor("0.85")
        for i, row in enumerate(rows):
            for j, r in enumerate(row):
                text = "n/a" if r is not None and r["seeds"] == 0 else "-" if r is None else f"{r['accuracy_mean']:.2f}"
                dark = np.isnan(values[i, j]) or values[i, j] > 0.6
                axis.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if dark else "white")
        axis.set_xticks(range(len(ALL_FRACTIONS)), [percent(f) for f in ALL_FRACTIONS])
        axis.set_xlabel("malicious clients")
        axis.set_title(attack)
    axes[0].set_yticks(range(len(order)), [LABELS[s] for s in order])
    figure.colorbar(image, ax=axes, shrink=0.8, label="final test accuracy (mean over seeds)")
    figure.suptitle("Final-round test accuracy, mean over seeds: digits, 20 clients, Dirichlet(0.5), MLP, "
                    "30 rounds of 1 epoch; n/a: Bulyan needs n >= 4f + 3")
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    out = analysis_folder(HERE, __doc__.splitlines()[0], argv)
    table = summary(collect())
    table["malicious"] = table["fraction"].map(malicious)
    columns = ["attack", "fraction", "malicious", "strategy", "accuracy_mean", "accuracy_std",
               "attack_success_rate_mean", "attack_success_rate_std", "seeds", "note"]
    table[columns].sort_values(["attack", "fraction", "strategy"]).round(4).to_csv(out / "results.csv", index=False)
    (out / "results.md").write_text(markdown(table))
    figure(table, out / "accuracy.png")
    print(markdown(table))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
