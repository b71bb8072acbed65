"""How a training run reports progress and learns it should stop (no TensorFlow here).

`training.train` calls these hooks; the base class reports nothing and never cancels.
`fer_core.runs.RunReporter` writes them to the run folder for the app's pages.
"""

from __future__ import annotations

from fer_core.errors import FerError


class TrainingCancelled(FerError):
    """The user asked the run to stop; its last finished epoch is checkpointed and resumable."""


class TrainingReporter:
    cancel_requested: bool = False

    def phase(self, name: str, detail: str = "") -> None:
        """A new stage: "loading data", "teacher predictions", "training", "validating", ..."""

    def step(self, fraction: float, detail: str = "") -> None:
        """Progress inside a stage that is not an epoch (0..1), e.g. teacher predictions."""

    def batch(self, epoch: int, epochs: int, step: int, steps: int, logs: dict) -> None:
        """After each training batch: epoch (1-based), step (1-based) of steps, running metrics."""

    def epoch_end(self, row: dict) -> None:
        """After each epoch: its history row."""

    def check_cancel(self) -> None:
        if self.cancel_requested:
            raise TrainingCancelled("cancelled by the user")
