"""Where each round's aggregate metrics go besides metrics.csv: nowhere, or TensorBoard."""

from pathlib import Path


class NoLogger:
    """Logs nothing: metrics.csv holds everything."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def log(self, server_round: int, metrics: dict[str, float]) -> None:
        """Nothing to do."""

    def close(self) -> None:
        """Nothing to release."""


class TensorBoardLogger:
    """Writes each round's aggregate metrics as TensorBoard scalars, tagged ``stage/metric``.

    Parameters
    ----------
    run_dir : Path
        The run folder.
    log_dir : str, default "tensorboard"
        Folder of the event files, relative to ``run_dir`` unless absolute.
    """

    def __init__(self, run_dir: Path, log_dir: str = "tensorboard") -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(run_dir) / log_dir
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def log(self, server_round: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            stage, _, name = key.partition("_")  # keys are "stage_metric"; stages hold no "_"
            self._writer.add_scalar(f"{stage}/{name}", value, global_step=server_round)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
