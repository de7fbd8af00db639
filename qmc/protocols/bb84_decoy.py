"""Decoy-state BB84 with weak coherent pulses.

Pulse classes are indexed by (intensity k, Alice basis a, Bob basis b, Alice bit x); bases are
ordered (Z, X), Z being the key basis. Alice picks intensity k with probability
``probabilities[k]`` and basis Z with probability ``p_z``; Bob picks Z with probability ``p_z``
too; bits are uniform. ``p_z = 1/2`` is the symmetric BB84 of Bennett and Brassard (sifting factor
1/2 when both bases give key); ``p_z -> 1`` is the efficient BB84 of Lo, Chau, Ardehali,
J. Cryptology 18, 133 (2005).

Intensity 0 is the signal (the largest); the others are decoys, ordered from largest to smallest
(a vacuum decoy has intensity 0).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from qmc._pytree import pytree_dataclass, static
from qmc.protocols.base import AbstractProtocol
from qmc.protocols.decoy_space import DecoySpace
from qmc.validation import Range, Rule

__all__ = ["DecoyBB84", "BASES", "OUTCOMES", "KEY_BASES"]

BASES = ("Z", "X")
OUTCOMES = ("no_click", "click_0", "click_1", "double_click")
KEY_BASES = ("Z", "both")


@pytree_dataclass
class DecoyBB84(AbstractProtocol):
    """Decoy-state BB84 pulse classes.

    Args:
        intensities: mean photon numbers (signal first, then decoys in decreasing order), shape (k,).
        probabilities: probability of each intensity, shape (k,), summing to 1. Asymptotic analyses
            accept 0 for decoys: the limit of vanishing decoy probability, in which the rate per
            emitted pulse equals Lo, Ma, Chen's rate per signal pulse.
        p_z: probability that Alice (and, independently, Bob) picks the Z basis.
        key_basis: ``"both"``: key from matched Z and matched X signal pulses (standard BB84,
            Lo-Ma-Chen's sifting factor 1/2 at p_z = 1/2); ``"Z"``: key from Z only, X tests the
            phase error (efficient BB84, finite-key protocols).
    """

    intensities: object = (0.5, 0.1, 0.0)
    probabilities: object = (1.0, 0.0, 0.0)
    p_z: float = 0.5
    key_basis: str = static("both")

    def checks(self):
        return [
            Range("intensities", 0.0),
            Range("probabilities", 0.0, 1.0),
            Range("p_z", 0.0, 1.0),
            Rule(
                "intensities,probabilities",
                lambda p, xp: xp.asarray(
                    xp.shape(p.intensities) == xp.shape(p.probabilities) and xp.ndim(p.intensities) == 1
                ),
                "must be 1-d arrays of the same length (one probability per intensity)",
            ),
            Rule(
                "probabilities",
                lambda p, xp: xp.abs(xp.sum(p.probabilities) - 1.0) <= 1e-9,
                "must sum to 1",
            ),
            Rule(
                "intensities",
                lambda p, xp: xp.all(xp.diff(p.intensities) < 0.0) if xp.size(p.intensities) > 1 else True,
                "must be strictly decreasing (signal first, then decoys, vacuum last)",
            ),
            Rule(
                "key_basis",
                lambda p, xp: xp.asarray(p.key_basis in KEY_BASES),
                f"must be one of {', '.join(KEY_BASES)}",
            ),
        ]

    @property
    def n_intensities(self) -> int:
        return int(jnp.shape(self.intensities)[0])

    def basis_probabilities(self):
        """(P(Z), P(X)) for Alice, and independently for Bob."""
        return jnp.stack([self.p_z, 1.0 - self.p_z])

    def class_probabilities(self):
        """P(k, a, b, x), shape (k, 2, 2, 2)."""
        pb = self.basis_probabilities()
        p = jnp.asarray(self.probabilities)
        bits = jnp.full((1, 1, 1, 2), 0.5)  # uniform bit, explicit rank (rank promotion may raise)
        return p[:, None, None, None] * pb[None, :, None, None] * pb[None, None, :, None] * bits

    def key_basis_mask(self):
        """1.0 for each basis (Z, X) that gives key, shape (2,)."""
        return jnp.asarray([1.0, 1.0 if self.key_basis == "both" else 0.0])

    # -- the optimizer's view -------------------------------------------------------------------

    def parameter_space(self, analysis=None) -> DecoySpace:
        """Every parameter ``analysis`` reads (its ``parameters``; all of them without an analysis):
        the signal intensity, the decoy intensities, the intensity probabilities and p_z.

        The weakest intensity keeps this protocol's value when there are three or more (the
        vacuum, or Lim's mu_3 = 2e-4: the decoy bounds are written for a fixed one); with one or
        two (no decoy; Rusca's one decoy) every intensity is free. Asymptotic rates rise as the
        decoy probabilities shrink and p_z -> 1 where only Z gives key: their optimum is at the
        space's floors (:mod:`qmc.protocols.decoy_space`).
        """
        uses = getattr(analysis, "parameters", ("signal", "decoys", "probabilities", "p_z"))
        k = getattr(analysis, "n_intensities", None) or getattr(type(analysis), "n_intensities", None)
        k = int(np.shape(self.intensities)[0]) if k is None else int(k)
        if "decoys" in uses and k > 1:
            intensities = "all" if k == 2 else "decoys"
        elif "signal" in uses or "decoys" in uses:
            intensities = "all" if k == 1 else "signal"
        else:
            intensities = "none"
        return DecoySpace(intensities, probabilities="probabilities" in uses and k > 1, p_z="p_z" in uses)

    def parameters(self) -> dict:
        """Every parameter as a flat dict: ``mu1``.., ``p_mu1``.., ``p_z`` (arrays keep their
        leading batch axes)."""
        mu = np.asarray(self.intensities)
        p = np.asarray(self.probabilities)
        out = {f"mu{j + 1}": mu[..., j] for j in range(mu.shape[-1])}
        out.update({f"p_mu{j + 1}": p[..., j] for j in range(p.shape[-1])})
        out["p_z"] = np.asarray(self.p_z)
        return out

    @classmethod
    def from_parameters(cls, row, key_basis: str = "Z") -> "DecoyBB84":
        """The protocol of a flat dict as :meth:`parameters` gives it (e.g. a row of a results
        table); intensities ``mu1``, ``mu2``, ... as far as they are given and not empty."""
        k = 0
        while row.get(f"mu{k + 1}") is not None and not np.isnan(float(row[f"mu{k + 1}"])):
            k += 1
        return cls(
            intensities=tuple(float(row[f"mu{i + 1}"]) for i in range(k)),
            probabilities=tuple(float(row[f"p_mu{i + 1}"]) for i in range(k)),
            p_z=float(row["p_z"]), key_basis=key_basis,
        )
