"""TensorBoard: each round's aggregate metrics as scalars."""

from pathlib import Path

from fedsim.callbacks.base import Callback, History, Row, RunInfo


class TensorBoard(Callback):
    """Writes each round's aggregate metrics as TensorBoard scalars, tagged ``stage/metric``.

    Parameters
    ----------
    log_dir : str
        Folder of the event files, relative to the run folder unless absolute.
    """

    def __init__(self, log_dir: str) -> None:
        if not log_dir.strip():
            from fedsim.config.checks import ConfigError

            raise ConfigError("callbacks.tensorboard.log_dir must name a folder (got an empty string).")
        self.log_dir = log_dir
        self._writer = None

    def on_run_start(self, run: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # A resumed run drops the events its first run wrote after the checkpoint's round.
        purge_step = run.resumed_after + 1 if run.resumed_after else None
        self._writer = SummaryWriter(log_dir=str(Path(run.run_dir) / self.log_dir), purge_step=purge_step)

    def on_round_end(self, server_round: int, rows: list[Row], history: History) -> None:
        for key, value in history.rounds[server_round].items():
            stage, _, name = key.partition("_")  # keys are "stage_metric"; stages hold no "_"
            self._writer.add_scalar(f"{stage}/{name}", value, global_step=server_round)
        self._writer.flush()

    def on_run_end(self, run: RunInfo, history: History, error: BaseException | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
