"""Run the robust-aggregation study: eight aggregators against five poisoning attacks, and a backdoor, on digits.

Setting: scikit-learn's digits over 20 clients with Dirichlet(0.5) label skew, the 2NN
MLP, all clients every round, 30 rounds of 1 local epoch (batch 10, lr 0.05). Attacks
(each at its conf/attack/NAME.yaml defaults) make 10, 20 or 30% of the clients
malicious; ``attack=none`` is the 0% baseline shared by every attack. The strategies
that need the number of attackers f are told the true one (round(fraction x 20)), and
a strategy is not run at a fraction it cannot tolerate (Krum and Multi-Krum need
n >= 2f + 3, Bulyan n >= 4f + 3). The backdoor runs FedAvg, norm clipping and Multi-Krum
at 10, 20 and 30%, and at 0% (no attacker, the success rate still measured). Runs go to
``runs/SCENARIO/STRATEGY/seed_N`` (SCENARIO: ``none`` or ``ATTACK_FRACTION``); completed
ones are skipped on a rerun.

    python experiments/robust_aggregation/run.py --jobs 1 [--seeds 0 1 2]
"""

import argparse
from pathlib import Path

from fedsim.study import run_study

HERE = Path(__file__).parent
NUM_CLIENTS = 20
SETTING = [
    "dataset=digits",
    "model=mlp",
    "partitioner=dirichlet",
    "partitioner.alpha=0.5",
    f"num_clients={NUM_CLIENTS}",  # clients_per_round defaults to num_clients: all of them every round
    "num_rounds=30",
    "client.local_epochs=1",
]
ATTACKS = ["sign_flip", "gaussian", "label_flip", "alie", "ipm"]
FRACTIONS = [0.1, 0.2, 0.3]

# tau and max_norm scaled to this run's updates by the rules their YAML files state for the
# default run (5 local epochs): here, with 1 epoch, a round's median honest update norm is
# 0.22-0.42 and its largest distance from centered clipping's center 0.38-0.85 (seeds 0-2),
# so the defaults (1.0) clip no honest client and let through anything that close.
CENTERED_CLIPPING_TAU = 0.5  # about the largest distance of an honest update from the center
NORM_CLIPPING_MAX_NORM = 0.3  # about the median norm of an honest update
# Well below the median honest distance from the center (0.20-0.39), so nearly every client is
# clipped: does centered clipping resist an attack once it clips honest clients too?
CENTERED_CLIPPING_TIGHT_TAU = 0.1


def strategies(f: int) -> dict[str, list[str]]:
    """The overrides of every strategy of the study against f malicious clients (the true number)."""
    return {
        "fedavg": ["strategy=fedavg"],
        "fedmedian": ["strategy=fedmedian"],
        # int(beta * 20) = f values cut at each end of every coordinate: all of the attackers'
        # values when they sit at one end, as sign flipping and Gaussian noise mostly do
        "fedtrimmedavg": ["strategy=fedtrimmedavg", f"strategy.beta={f / NUM_CLIENTS}"],
        "krum": ["strategy=krum", f"strategy.num_malicious_nodes={f}"],
        "multikrum": ["strategy=multikrum", f"strategy.num_malicious_nodes={f}"],
        "bulyan": ["strategy=bulyan", f"strategy.num_malicious_nodes={f}"],
        "centered_clipping": ["strategy=centered_clipping", f"strategy.tau={CENTERED_CLIPPING_TAU}"],
        "centered_clipping_tau_1": ["strategy=centered_clipping"],  # the YAML's default tau, for comparison
        "centered_clipping_tight": ["strategy=centered_clipping", f"strategy.tau={CENTERED_CLIPPING_TIGHT_TAU}"],
        "rfa": ["strategy=rfa"],
    }


def backdoor_strategies(f: int) -> dict[str, list[str]]:
    """The strategies of the backdoor table against f malicious clients."""
    return {
        "fedavg": ["strategy=fedavg"],
        "norm_clipping": ["strategy=norm_clipping", f"strategy.max_norm={NORM_CLIPPING_MAX_NORM}"],
        "norm_clipping_max_norm_1": ["strategy=norm_clipping"],  # the YAML's default max_norm, for comparison
        "multikrum": ["strategy=multikrum", f"strategy.num_malicious_nodes={f}"],
    }


# n >= a f + b for the strategies that tolerate only so many attackers: (a, b).
TOLERANCE = {"krum": (2, 3), "multikrum": (2, 3), "bulyan": (4, 3)}


def malicious(fraction: float) -> int:
    """The number of malicious clients fedsim draws for ``attack.fraction``."""
    return round(fraction * NUM_CLIENTS)


def untolerated(strategy: str, f: int) -> str | None:
    """Why ``strategy`` is not run against f attackers of NUM_CLIENTS, or None when it is."""
    if strategy not in TOLERANCE:
        return None
    a, b = TOLERANCE[strategy]
    return None if NUM_CLIENTS >= a * f + b else f"n/a: needs n >= {a}f+{b}"


def study(seeds: list[int]) -> dict[str, list[str]]:
    """Run name -> overrides for every run of the study."""
    scenarios = {"none": (0, ["attack=none"])}
    scenarios |= {
        f"{attack}_{fraction}": (malicious(fraction), [f"attack={attack}", f"attack.fraction={fraction}"])
        for attack in ATTACKS
        for fraction in FRACTIONS
    }
    # fraction 0 gives the backdoor's baseline: no attacker, but the attack success rate is measured
    backdoor = {
        f"backdoor_{fraction}": (malicious(fraction), ["attack=backdoor", f"attack.fraction={fraction}"])
        for fraction in [0.0, *FRACTIONS]
    }
    runs = {}
    for seed in seeds:
        for table, lineup in ((scenarios, strategies), (backdoor, backdoor_strategies)):
            for scenario, (f, attack) in table.items():
                for strategy, overrides in lineup(f).items():
                    if untolerated(strategy, f) is None:
                        runs[f"{scenario}/{strategy}/seed_{seed}"] = [*SETTING, *overrides, *attack, f"seed={seed}"]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    run_study(study(args.seeds), HERE / "runs", jobs=args.jobs)


if __name__ == "__main__":
    main()
