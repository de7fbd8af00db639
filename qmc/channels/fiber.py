"""Single-mode optical fiber."""

from __future__ import annotations

from qmc._pytree import pytree_dataclass
from qmc.channels.base import AbstractChannel
from qmc.validation import Range

__all__ = ["Fiber"]


@pytree_dataclass
class Fiber(AbstractChannel):
    """Single-mode fiber span: loss = loss_db_per_km * length_km + insertion_loss_db.

    Args:
        length_km: fiber length in km.
        loss_db_per_km: attenuation coefficient (0.21 dB/km in Gobby, Yuan, Shields, APL 84, 3762
            (2004); about 0.2 dB/km for standard SMF-28 at 1550 nm).
        insertion_loss_db: fixed extra loss (connectors, splices, filters) in dB.
    """

    length_km: float = 50.0
    loss_db_per_km: float = 0.2
    insertion_loss_db: float = 0.0

    def loss_db(self):
        return self.loss_db_per_km * self.length_km + self.insertion_loss_db

    def checks(self):
        return [
            Range("length_km", 0.0),
            Range("loss_db_per_km", 0.0),
            Range("insertion_loss_db", 0.0),
        ]
