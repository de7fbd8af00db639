"""An analysis evaluated on the expected observations of a chosen engine (a system model)."""

from __future__ import annotations

from typing import Any

from qmc._pytree import pytree_dataclass
from qmc.analysis.base import AbstractAnalysis

__all__ = ["ModelAnalysis"]


@pytree_dataclass
class ModelAnalysis(AbstractAnalysis):
    """``analysis`` applied to ``model.observations(None, link, protocol)``.

    The objective that the finite-key studies optimize: with ``model`` the exact engine
    (:class:`qmc.engines.ExactEngine`) it is ``analysis.key_rate(link, protocol)``; with
    :class:`qmc.engines.lim2014.Lim2014Model` it is Lim's closed-form model with afterpulsing,
    optimized exactly as it is reported. A PyTree: the analysis' and the model's numbers are
    leaves (``"analysis.analysis.block_size"`` is a sweep path).
    """

    analysis: Any
    model: Any

    @property
    def name(self) -> str:
        return self.analysis.name

    @property
    def finite(self) -> bool:
        return bool(type(self.analysis).finite)

    @property
    def parameters(self) -> tuple[str, ...]:
        return type(self.analysis).parameters

    @property
    def n_intensities(self) -> int | None:
        return getattr(type(self.analysis), "n_intensities", None)

    def protocol_checks(self, protocol):
        return self.analysis.protocol_checks(protocol)

    def observations(self, link, protocol):
        return self.model.observations(None, link, protocol)

    def key_rate(self, link, protocol):
        return self.analysis.key_rate_from_observations(self.observations(link, protocol), protocol, link)
