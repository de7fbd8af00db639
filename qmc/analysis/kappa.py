"""The security parameter proportional to the key: eps_sec = kappa l (Lim et al., PRA 89, 022307
(2014), Sec. IV, Fig. 1: kappa = 1e-15).

The key length l = F(eps_sec) of a finite-key analysis grows with eps_sec, so the key that is
consistent with eps_sec = kappa l is a fixed point l = F(kappa l). :func:`solve` finds the largest
one by the iteration l_{i+1} = F(kappa l_i) started above it (l_0 = n_X, all the key-basis
detections): the iterates descend monotonically to the largest fixed point (F is increasing, so
l_i >= l* implies F(kappa l_i) >= l*), or below 0 where there is none (no key). The iteration runs
until two iterates agree to :data:`RTOL` (relative), at most :data:`MAX_STEPS` steps; a key is
claimed only where it converged, so the eps_sec returned is at most kappa l (1 + RTOL). Its
contraction factor is dF/dl = kappa F'(kappa l), about sqrt(n_X) / l: a few steps wherever the
key is large, many only next to the largest distance where the key exists at all. A fixed eps_sec
(eps_of independent of l) is the same iteration, converged after one step.

Derivatives: the iteration runs on values only (its inputs' derivatives are cut, so that neither
forward nor reverse mode traces the loop twice); the key's derivative with respect to every other
input theta is the implicit one at the fixed point, dl*/dtheta = (dF/dtheta) / (1 - dF/dl),
obtained from one more evaluation of F at the fixed point.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["solve", "proportional", "RTOL", "MAX_STEPS"]

RTOL = 1e-12       # two iterates this close (relative) are the fixed point
MAX_STEPS = 200    # iterations at most (only a key within a hair of its largest distance needs them)


def proportional(kappa, fixed_eps, use_kappa, eps_floor: float = 1e-300, eps_ceiling: float = 0.5):
    """eps_sec as a function of the key length: kappa max(l, 1) (clipped to [eps_floor,
    eps_ceiling]) where ``use_kappa``, else ``fixed_eps``."""
    def eps_of(length):
        scaled = jnp.clip(kappa * jnp.maximum(length, 1.0), eps_floor, eps_ceiling)
        return jnp.where(use_kappa, scaled, fixed_eps)

    return eps_of


def solve(length_of: Callable, eps_of: Callable, start, values_of: Callable | None = None):
    """The largest key length l with l = ``length_of``(``eps_of``(l)).

    Args:
        length_of: eps_sec -> (key length, aux) (traceable; its other inputs are closed over and
            the length is differentiated through the implicit derivative; aux, e.g. the bounds
            behind the length, is returned as evaluated at the fixed point).
        eps_of: key length -> eps_sec (e.g. :func:`proportional`).
        start: a length above the fixed point (e.g. n_X).
        values_of: ``length_of`` on values only (its inputs under ``stop_gradient``), for the
            iteration; default ``length_of``.

    Returns:
        ``(length, eps_sec, converged, aux)``: the key ``length_of`` gives at ``eps_sec``, which
        is ``eps_of`` of the last iterate: where the iteration converged the two agree to
        :data:`RTOL` (length <= 0 where there is no key); ``converged`` is False where it did not
        within :data:`MAX_STEPS` steps (eps_sec then exceeds kappa l: the caller claims no key).
    """
    values_of = length_of if values_of is None else values_of

    def step(length):
        return values_of(eps_of(length))[0]

    def not_done(carry):
        i, previous, length = carry
        close = jnp.abs(length - previous) <= RTOL * jnp.maximum(jnp.abs(length), 1.0)
        return (i < MAX_STEPS) & ~close & (length > 0.0)  # at or below 0: no key, nothing to refine

    def body(carry):
        i, _, length = carry
        return i + 1, length, step(length)

    start = jax.lax.stop_gradient(jnp.maximum(jnp.asarray(start, jnp.float64), 1.0))
    _, previous, fixed = jax.lax.while_loop(not_done, body, (jnp.asarray(1), start, step(start)))
    fixed, previous = jax.lax.stop_gradient(fixed), jax.lax.stop_gradient(previous)
    converged = (jnp.abs(fixed - previous) <= RTOL * jnp.maximum(jnp.abs(fixed), 1.0)) | (fixed <= 0.0)
    # One evaluation with derivatives at the fixed point: the key Eq. (1) gives at eps_of(l*) (l*
    # itself, to RTOL, where converged); dividing its change by 1 - dF/dl gives the implicit
    # derivative of l*.
    value, slope, aux = jax.jvp(lambda l: length_of(eps_of(l)), (fixed,), (jnp.ones_like(fixed),), has_aux=True)
    slope = jax.lax.stop_gradient(slope)
    damping = jnp.where(jnp.abs(1.0 - slope) > 1e-9, 1.0 - slope, 1.0)
    length = jax.lax.stop_gradient(value) + (value - jax.lax.stop_gradient(value)) / damping
    return length, eps_of(fixed), converged, aux
