"""The protocol interface: which pulse classes exist, and which of their parameters are free.

A protocol says which pulse classes Alice sends (intensities, bases, bits, with their
probabilities: :meth:`AbstractProtocol.class_probabilities`) and how outcomes are sifted into key
(:meth:`AbstractProtocol.key_basis_mask`). It also declares its free parameters for the
optimizer (:meth:`AbstractProtocol.parameter_space`): the optimizer maps an unconstrained vector
onto the protocol through that space and never names a protocol field itself.
"""

from __future__ import annotations

import abc

__all__ = ["AbstractProtocol"]


class AbstractProtocol(abc.ABC):
    """Pulse classes (intensity k, Alice basis a, Bob basis b, Alice bit x) and their sifting.

    Attributes every protocol has:
        intensities: mean photon number of each intensity class, shape (k,).
        probabilities: probability of each intensity, shape (k,).
    """

    @abc.abstractmethod
    def class_probabilities(self):
        """P(k, a, b, x), shape (k, 2, 2, 2)."""

    @abc.abstractmethod
    def basis_probabilities(self):
        """(P(Z), P(X)) for Alice, and independently for Bob, shape (2,)."""

    @abc.abstractmethod
    def key_basis_mask(self):
        """1.0 for each basis (Z, X) whose matched pulses give key, shape (2,)."""

    @abc.abstractmethod
    def parameter_space(self, analysis=None):
        """The free parameters the optimizer varies for ``analysis`` (a hashable space object with
        ``size``, ``names``, ``to_protocol``, ``from_protocol`` and ``starting_points``)."""

    def checks(self):
        """Range checks of the fields (:mod:`qmc.validation`)."""
        return []
