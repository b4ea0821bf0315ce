"""The one line a quiet run (a sweep's job) prints: its final metrics, or why it failed."""

from pathlib import Path

from rich.console import Console

from fedsim.callbacks.progress import SHOWN


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
