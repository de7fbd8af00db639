"""The detector interface: Bob's receiver as the engines see it.

A receiver has an active basis choice and detectors behind it; the engines read, per gate, its
detection efficiency (Bob's internal loss included), its dark-count probability per detector, the
misalignment of the matched basis and its click model, and ask whether it has memory (afterpulsing
or dead time, which only the stream engine simulates pulse by pulse).
"""

from __future__ import annotations

import abc

__all__ = ["AbstractDetector"]


class AbstractDetector(abc.ABC):
    """Bob's receiver.

    Attributes every receiver has (array leaves unless marked static):
        efficiency: detection efficiency of each detector, Bob's internal loss included (eta_Bob).
        p_dark: dark-count probability per detector per gate.
        misalignment: e_d, probability that a photon hits the wrong detector in the matched basis.
        click_model: (static) how the exact engine turns photons into clicks.
    """

    @abc.abstractmethod
    def has_memory(self) -> bool:
        """Whether clicks change later gates (afterpulsing, dead time): concrete values only."""

    def checks(self):
        """Range checks of the fields (:mod:`qmc.validation`)."""
        return []
