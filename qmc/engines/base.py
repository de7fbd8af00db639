"""The engine interface, and the exact engine as an engine object.

An engine turns a link and a protocol into what a receiver observes:

* :meth:`AbstractEngine.observations` ``(key, link, protocol) -> Observations``: gains and error
  gains per intensity and matched basis, expected (closed-form engines ignore the key) or counted;
* Monte Carlo engines also have ``tally(key, link, protocol)``: the counts themselves
  (:class:`qmc.engines.Tally` or :class:`qmc.engines.SiftedTally`);
* closed-form engines (system models) also have ``sifted_probabilities(link, protocol)``: the
  probabilities of the cells of a :class:`qmc.engines.SiftedTally` per emitted pulse, which the
  session samplers draw from.

Engines are frozen dataclasses: their numbers are PyTree leaves; sizes and methods (``n_pulses``,
``path``, ``chunk``) are static fields.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from qmc._devices import devices_check
from qmc._pytree import as_count, pytree_dataclass, static
from qmc.engines import exact

__all__ = ["AbstractEngine", "ExactEngine"]


class AbstractEngine(abc.ABC):
    """An engine (see the module docstring). ``name`` labels it in configs and tables."""

    name: ClassVar[str]

    @abc.abstractmethod
    def observations(self, key, link, protocol):
        """Expected or observed gains and error gains (:class:`qmc.engines.Observations`)."""

    def checks(self):
        """Range checks of the engine's settings (:mod:`qmc.validation`)."""
        return []


@pytree_dataclass
class ExactEngine(AbstractEngine):
    """Closed-form probabilities (:func:`qmc.engines.exact.outcome_table`); no randomness.

    Args:
        devices: local devices a sweep's points are split over (:func:`qmc.sweep.run`): ``None``
            for all of them, or a count (the first ones). The numbers do not depend on it.
    """

    devices: int | None = static(None)
    name: ClassVar[str] = "exact"

    def __post_init__(self) -> None:
        object.__setattr__(self, "devices", as_count(self.devices))

    def checks(self):
        return [devices_check("devices")]

    def outcome_table(self, link, protocol):
        return exact.outcome_table(link, protocol)

    def observations(self, key, link, protocol):
        del key
        return exact.observations(link, protocol)

    def sifted_probabilities(self, link, protocol):
        """:func:`qmc.engines.exact.sifted_probabilities`: P(matched class) (k, 2) and
        P(outcome | class) (k, 2, 4)."""
        return exact.sifted_probabilities(link, protocol)
