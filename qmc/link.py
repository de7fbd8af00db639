"""A link: source -> channel -> detectors."""

from __future__ import annotations

from qmc._pytree import pytree_dataclass
from qmc.channels import Fiber
from qmc.detectors import ThresholdDetectors
from qmc.sources import WeakCoherentSource

__all__ = ["Link"]


@pytree_dataclass
class Link:
    """Alice's source, the channel and Bob's receiver. Each part is a PyTree of its own."""

    source: object = None
    channel: object = None
    detector: object = None

    def __post_init__(self) -> None:
        if self.source is None:
            object.__setattr__(self, "source", WeakCoherentSource())
        if self.channel is None:
            object.__setattr__(self, "channel", Fiber())
        if self.detector is None:
            object.__setattr__(self, "detector", ThresholdDetectors())

    def transmittance(self):
        """Channel transmittance times detector efficiency: eta of Lo, Ma, Chen (2005)."""
        return self.channel.transmittance() * self.detector.efficiency
