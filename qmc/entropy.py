"""The binary entropy of the key-rate formulas, one definition for every layer (the decoy and
finite-key analyses, BBM92's rates, the repeater chains' key fractions)."""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["h2"]


def h2(p):
    """Binary entropy in bits, clipped to [0, 1/2] (an error bound above 1/2 gives H = 1).

    Gradient-safe at 0: the double ``where`` keeps log(0) out of the backward pass.
    """
    p = jnp.clip(p, 0.0, 0.5)
    inside = p > 0.0
    ps = jnp.where(inside, p, 0.25)
    h = -(ps * jnp.log2(ps) + (1.0 - ps) * jnp.log2(1.0 - ps))
    return jnp.where(inside, h, 0.0)
