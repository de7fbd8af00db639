"""Bob's receiver: basis choice and threshold detectors (interface: :mod:`qmc.detectors.base`)."""

from qmc.detectors.base import AbstractDetector
from qmc.detectors.threshold import (
    CLICK_MODELS, DEAD_TIME_MODES, ThresholdDetectors, gys2004, p_dark_from_background_yield,
)

__all__ = [
    "AbstractDetector", "ThresholdDetectors", "CLICK_MODELS", "DEAD_TIME_MODES", "p_dark_from_background_yield",
    "gys2004",
]
