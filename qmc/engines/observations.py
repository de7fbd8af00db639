"""What an analysis sees: gains and error gains per intensity and matched basis.

Built either from exact probabilities (an outcome table) or from observed counts (a Monte Carlo
Tally, or an experiment), so every analysis that can work from observations accepts both.
"""

from __future__ import annotations

import jax.numpy as jnp

from qmc._pytree import pytree_dataclass

__all__ = ["Observations"]


def _matched(x):
    """Diagonal a = b of an array (k, a, b, ...) -> (k, basis, ...)."""
    return jnp.stack([x[:, 0, 0], x[:, 1, 1]], axis=1)


def _error_weights():
    # Outcome weights that count as a bit error for Alice's bit x: the other detector only, and a
    # double click half of the time (it is given a random bit). Shape (x, outcome).
    return jnp.asarray([[0.0, 0.0, 1.0, 0.5], [0.0, 1.0, 0.0, 0.5]])


@pytree_dataclass
class Observations:
    """Per intensity k and matched basis b (Z, X):

    Attributes:
        gain: Q[k, b], probability (or frequency) of at least one click, shape (k, 2).
        error_gain: E Q[k, b], probability of a bit error (double clicks count 1/2), shape (k, 2).
        n_sent: pulses sent in each (k, b) matched class, or None for exact expectations.
        n_pulses: pulses emitted in total (every class, mismatched bases included), or None: for
            exact expectations, or where only the matched classes were counted (analyses that need
            it then estimate it from ``n_sent``).
    """

    gain: object
    error_gain: object
    n_sent: object = None
    n_pulses: object = None

    @classmethod
    def from_table(cls, table) -> "Observations":
        """From an outcome table (k, 2, 2, 2, 4); bits are equiprobable."""
        m = _matched(table)  # (k, b, x, outcome)
        # The clicks themselves, not 1 - P(no click), which loses the relative precision of a
        # small gain (eps / Q: 1e-10 at Q ~ 1e-6, amplified again by decoy bounds).
        gain = m[..., 1:].sum(axis=-1).mean(axis=-1)
        error_gain = jnp.einsum("kbxo,xo->kb", m, _error_weights()) / 2.0
        return cls(gain, error_gain)

    @classmethod
    def from_counts(cls, counts, sent) -> "Observations":
        """From counts (k, 2, 2, 2, 4) of each outcome and pulses sent (k, 2, 2, 2) per class (every
        class: their sum is the number of pulses emitted)."""
        sent = jnp.asarray(sent, jnp.float64)
        m = _matched(jnp.asarray(counts, jnp.float64))
        s = _matched(sent).sum(axis=-1)  # (k, b)
        detected = s - m[..., 0].sum(axis=-1)
        errors = jnp.einsum("kbxo,xo->kb", m, _error_weights())
        safe = jnp.maximum(s, 1.0)
        return cls(detected / safe, errors / safe, s, jnp.sum(sent))

    @property
    def qber(self):
        """E[k, b] = error gain / gain (0 where there are no clicks), shape (k, 2)."""
        return jnp.where(self.gain > 0, self.error_gain / jnp.where(self.gain > 0, self.gain, 1.0), 0.0)
