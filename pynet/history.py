"""What a fit did, epoch by epoch, and why it stopped."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class History:
    """Per-epoch training record (for optimizer "gd", an epoch is one full-batch step).

    loss / val_loss / val_metric / seconds: one entry per epoch (validation ones only with validation
    data; the metric is accuracy for classifiers, R² for regression). dead_fraction[i] and
    grad_norm[i] hold one value per hidden layer / per layer, for epoch diagnostic_epochs[i].
    stop_reason says why training stopped; best_epoch / best_loss give the best monitored loss.
    """

    monitor: str = "loss"
    backend: str = ""
    optimizer: str = ""
    loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_metric: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    diagnostic_epochs: list = field(default_factory=list)
    dead_fraction: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    stop_reason: str = ""
    best_epoch: int | None = None
    best_loss: float | None = None

    @property
    def epochs(self) -> int:
        """Epochs (GD: steps) recorded."""
        return len(self.loss)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"epochs": self.epochs}
