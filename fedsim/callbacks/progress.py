"""Terminal progress: one line per finished round and a summary table at the end."""

import time

from rich.console import Console
from rich.table import Table

from fedsim.callbacks.base import Callback, History, Row, RunInfo

# The stages whose failed clients a round's line counts, with their labels.
FAILING_STAGES = [("train", "training"), ("federated", "evaluation")]
# The aggregate metrics shown, with their labels.
SHOWN = [
    ("centralized_accuracy", "test acc"),
    ("centralized_loss", "test loss"),
    ("federated_accuracy", "client acc"),
    ("train_loss", "train loss"),
]


class Progress(Callback):
    """Prints each round's aggregate metrics as the round finishes, and a summary of the recorded metrics.

    Silent in quiet runs (``quiet``, or a sweep): those print one line per run instead.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.num_rounds = 0
        self.quiet = False
        self._started = time.perf_counter()

    def on_run_start(self, run: RunInfo) -> None:
        self.num_rounds, self.quiet = run.num_rounds, run.quiet
        self._started = time.perf_counter()
        if run.resumed_after and not self.quiet:
            self.console.print(f"resuming after round {run.resumed_after} of {run.num_rounds}, from its checkpoint")

    def on_round_end(self, server_round: int, rows: list[Row], history: History) -> None:
        if self.quiet:
            return
        metrics = history.rounds[server_round]
        width = len(str(self.num_rounds))
        parts = [f"round {server_round:>{width}}/{self.num_rounds}"]
        parts += [f"{label} {metrics[key]:.4f}" for key, label in SHOWN if key in metrics]
        if "system_round_seconds" in metrics:
            parts.append(f"{metrics['system_round_seconds']:.2f} s")
        parts += failure_counts(metrics)
        self.console.print("  ".join(parts))

    def on_run_end(self, run: RunInfo, history: History, error: BaseException | None = None) -> None:
        if self.quiet or error is not None:
            return
        table = Table(title="fedsim run finished", show_header=False)
        final = history.final
        for key, label in SHOWN:
            if key in final:
                table.add_row(f"final {label}", f"{final[key]:.4f}")
        if (best := history.best("centralized_accuracy")) is not None:
            table.add_row("best test acc", f"{best[1]:.4f} (round {best[0]})")
        table.add_row("wall time (rounds)", f"{time.perf_counter() - self._started:.1f} s")
        table.add_row("results", str(run.run_dir))
        self.console.print(table)


def failure_counts(metrics: dict[str, float]) -> list[str]:
    """``2 of 10 clients failed training`` for each stage of a round with failed clients (their reasons: failures.csv)."""
    return [
        f"{failures:.0f} of {metrics.get(f'system_{stage}_clients', failures):.0f} clients failed {label}"
        for stage, label in FAILING_STAGES
        if (failures := metrics.get(f"system_{stage}_failures", 0)) > 0
    ]
