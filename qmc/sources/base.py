"""The source interface: what every photon source tells the engines.

A source is described by what a detector can see of it: the probability that *no* photon of the
pulse survives a lossy path of total efficiency ``x`` (``p_none``), i.e. its probability
generating function G(s) = E[s^n] at s = 1 - x, since every photon survives independently
(beam-splitter model of loss). The exact engine needs nothing else, so a new source only
implements :meth:`AbstractSource.log_p_none` and :meth:`AbstractSource.photon_number_pmf` (and
optionally :meth:`AbstractSource.p_both` for precision).

The mean photon number ``mu`` of a pulse belongs to the protocol's pulse class (intensity), not to
the source; Fock sources ignore it.
"""

from __future__ import annotations

import abc

import jax.numpy as jnp

from qmc.channels.raman_spectrum import WAVELENGTH_RANGE_NM  # noqa: F401  (named in the docstring)
from qmc.validation import Range

__all__ = ["AbstractSource", "wavelength_check", "OPTICAL_RANGE_NM"]

OPTICAL_RANGE_NM = (300.0, 2000.0)  # what a source's wavelength_nm may be, nm


def wavelength_check() -> Range:
    """The range of a source's ``wavelength_nm``: optical, 300 to 2000 nm (free-space links use
    e.g. 785 or 850 nm). Classical traffic in a fiber narrows it to the Raman spectrum's range,
    :data:`WAVELENGTH_RANGE_NM` (O to U band), in :func:`qmc.channels.raman.check_noise_inputs`."""
    return Range("wavelength_nm", *OPTICAL_RANGE_NM)


class AbstractSource(abc.ABC):
    """A photon source: the photon-number statistics of one emitted pulse of mean ``mu``.

    Every method is a pure ``jnp`` function, broadcast over ``mu`` and the efficiencies.
    """

    @abc.abstractmethod
    def log_p_none(self, mu, x):
        """log P(no photon survives a path of efficiency ``x``) = log G(1 - x)."""

    @abc.abstractmethod
    def photon_number_pmf(self, mu, n):
        """P(n photons in the pulse)."""

    def p_any(self, mu, x):
        """P(at least one photon survives efficiency ``x``) = 1 - G(1 - x), without cancellation."""
        return -jnp.expm1(self.log_p_none(mu, x))

    def p_both(self, mu, a, b):
        """P(photons reach both of two disjoint output ports of efficiencies ``a`` and ``b``).

        Inclusion-exclusion on the generating function: 1 - G(1-a) - G(1-b) + G(1-a-b).
        """
        return self.p_any(mu, a) + self.p_any(mu, b) - self.p_any(mu, a + b)

    def p_multi(self, mu):
        """P(n >= 2): the multi-photon probability (GLLP's tagged pulses)."""
        return 1.0 - self.photon_number_pmf(mu, 0) - self.photon_number_pmf(mu, 1)

    def checks(self):
        """Range checks of the fields (:mod:`qmc.validation`)."""
        return []
