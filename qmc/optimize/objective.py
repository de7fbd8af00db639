"""The loss the optimizer minimizes: -ln R, finite with a finite gradient everywhere.

The loss is -ln R where the rate R is positive. Where it is clipped at 0 the loss is a constant
above every feasible value (2000 > -ln 1e-300) plus, for analyses that report the unclipped key
length (finite-key and asymptotic two/one-decoy), ln of how far l/N is below 0, so a start without
key still moves toward one. Value and gradient are finite everywhere (the analyses guard
max(R, 0), square roots, logarithms and H2(0); the loss uses double ``where``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qmc._pytree import replace_path
from qmc.analysis.keyrate import unclipped_rate

__all__ = ["objective", "loss", "value_and_grad", "value_grad_aux", "point_problem", "INFEASIBLE"]

INFEASIBLE = 2000.0  # loss where R = 0: above -ln(R) for every R >= 1e-300
_LOG_TINY = -700.0


def loss(out):
    """-ln R where R > 0, else INFEASIBLE + ln(max(-l/N, 0)) (the unclipped rate, if reported)."""
    rate = jnp.asarray(out.rate, jnp.float64)
    positive = rate > 0.0
    feasible = -jnp.log(jnp.where(positive, rate, 1.0))
    raw = unclipped_rate(out, 0.0)
    if raw is not None:
        short = jnp.maximum(-raw, 0.0)
        has = short > 0.0
        below = jnp.where(has, jnp.log(jnp.where(has, short, 1.0)), _LOG_TINY)
    else:
        below = _LOG_TINY
    return jnp.where(positive, feasible, INFEASIBLE + jnp.maximum(below, _LOG_TINY))


def objective(theta, link, protocol, analysis, space):
    """-ln(key rate) of ``analysis`` at ``space.to_protocol(theta, protocol)`` (see the module
    docstring for points without key). Finite with a finite gradient for every theta."""
    return loss(analysis.key_rate(link, space.to_protocol(theta, protocol)))


def value_and_grad(fun, d: int):
    """Value and gradient of a scalar function of a (d,) vector.

    Forward mode (d tangents of one ``jvp``, vmapped) when d <= 16: theta is small, and XLA
    compiles the forward-mode program about twice as fast as the reverse-mode one, runs it as
    fast, and the loss is traced once.
    """
    if d > 16:
        return jax.value_and_grad(fun)

    def value_and_grad(x):
        values, grads = jax.vmap(lambda v: jax.jvp(fun, (x,), (v,)))(jnp.eye(d, dtype=x.dtype))
        return values[0], grads

    return value_and_grad


def value_grad_aux(fun, d: int):
    """Value, gradient and auxiliary output of ``fun(x) -> (scalar, aux)`` at a (d,) vector, in
    the mode of :func:`value_and_grad` (the auxiliary output is computed once, beside the value)."""
    if d > 16:
        def reverse(x):
            (f, aux), g = jax.value_and_grad(fun, has_aux=True)(x)
            return f, g, aux

        return reverse

    def forward(x):
        def along(v):
            f, df, aux = jax.jvp(fun, (x,), (v,), has_aux=True)
            return f, df, aux

        return jax.vmap(along, out_axes=(None, 0, None))(jnp.eye(d, dtype=x.dtype))

    return forward


def point_problem(tree, item, paths):
    """The problem ``{"link", "analysis", "protocol"}`` at one point of a batch: ``item`` holds
    the values at ``paths`` ((n,) array), or (``paths`` None) is the point's Link."""
    if paths is None:
        return {**tree, "link": item}
    for i, path in enumerate(paths):
        tree = replace_path(tree, path, item[i])
    return tree
