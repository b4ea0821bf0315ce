"""What a run prints: one line per finished round and a summary table at the end."""

from pathlib import Path

from rich.console import Console
from rich.table import Table

SHOWN = [
    ("centralized_accuracy", "test acc"),
    ("centralized_loss", "test loss"),
    ("federated_accuracy", "client acc"),
    ("train_loss", "train loss"),
]


class RoundPrinter:
    """Prints each round's aggregate metrics as the round finishes, and keeps the last."""

    def __init__(self, num_rounds: int, quiet: bool = False, console: Console | None = None) -> None:
        self.num_rounds = num_rounds
        self.quiet = quiet
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.last: dict[str, float] = {}
        self.best_accuracy: tuple[int, float] | None = None

    def round_finished(self, server_round: int, metrics: dict[str, float]) -> None:
        self.last = metrics
        accuracy = metrics.get("centralized_accuracy")
        if accuracy is not None and (self.best_accuracy is None or accuracy > self.best_accuracy[1]):
            self.best_accuracy = (server_round, accuracy)
        if self.quiet:
            return
        width = len(str(self.num_rounds))
        parts = [f"round {server_round:>{width}}/{self.num_rounds}"]
        parts += [f"{label} {metrics[key]:.4f}" for key, label in SHOWN if key in metrics]
        if "system_round_seconds" in metrics:
            parts.append(f"{metrics['system_round_seconds']:.2f} s")
        self.console.print("  ".join(parts))

    def summary(self, run_dir: Path, seconds: float) -> None:
        if self.quiet:
            return
        table = Table(title="fedsim run finished", show_header=False)
        for key, label in SHOWN:
            if key in self.last:
                table.add_row(f"final {label}", f"{self.last[key]:.4f}")
        if self.best_accuracy is not None:
            table.add_row("best test acc", f"{self.best_accuracy[1]:.4f} (round {self.best_accuracy[0]})")
        table.add_row("wall time", f"{seconds:.1f} s")
        table.add_row("results", str(run_dir))
        self.console.print(table)


def print_run_line(
    label: str,
    run_dir: Path,
    final: dict[str, float] | None = None,
    seconds: float | None = None,
    failure: str | None = None,
    console: Console | None = None,
) -> None:
    """One line for a whole run (quiet mode, sweeps): its final metrics, or why it failed."""
    console = console or Console(highlight=False, soft_wrap=True)
    if failure is not None:
        console.print(f"{label}  failed: {failure}  {run_dir}", markup=False)  # overrides hold brackets
        return
    parts = [label]
    parts += [f"{name} {final[key]:.4f}" for key, name in SHOWN if final and key in final]
    if seconds is not None:
        parts.append(f"{seconds:.1f} s")
    parts.append(str(run_dir))
    console.print("  ".join(parts), markup=False)
