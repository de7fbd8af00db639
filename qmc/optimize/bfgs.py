"""BFGS with a backtracking line search, one start, traceable and vmappable.

Dense inverse Hessian (theta has at most 2k dimensions; gradients by forward-mode autodiff, d
tangents of one ``jvp``), Armijo backtracking with safeguarded quadratic interpolation, step
length capped in theta units; each loop iteration is one evaluation, so the loss is traced once and
a vmapped batch advances in lockstep.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from qmc.optimize.objective import INFEASIBLE as _INFEASIBLE
from qmc.optimize.objective import value_and_grad as _value_and_grad

__all__ = ["minimize_bfgs"]


class _State(NamedTuple):
    x: Any       # accepted point (d,)
    f: Any       # loss there
    g: Any       # gradient there (d,)
    h: Any       # inverse Hessian approximation (d, d)
    p: Any       # search direction (d,), capped
    slope: Any   # g . p
    alpha: Any   # step length being tried
    n_ls: Any    # trials of the current line search
    fresh: Any   # h is a plain identity: rescale it at the next update
    k: Any       # accepted iterations
    n_eval: Any  # evaluations
    done: Any


def minimize_bfgs(fun, x0, *, max_iter: int = 100, max_linesearch: int = 20, gtol: float = 1e-7,
                  ftol: float = 1e-12, max_step: float = 2.0, max_eval: int | None = None,
                  patience: int = 15, cutoff=jnp.inf, h0=None, fresh0=None, dtol: float = 1e-10):
    """Minimize ``fun`` from ``x0`` with BFGS (traceable, vmappable).

    Armijo backtracking (c1 = 1e-4) with safeguarded quadratic interpolation; steps capped at
    ``max_step`` in the max norm; the inverse Hessian starts as the identity, is rescaled by
    s.y / y.y at its first update (Nocedal and Wright, Eq. (6.20)), and is reset when the loss
    crosses between the feasible and the infeasible regime. Stops when the gradient max norm is
    below ``gtol``, the loss decrease below ``ftol`` (1 + |f|), the decrease the quasi-Newton model
    predicts (g.H.g / 2, once H is not a plain identity: updated, or inherited through ``h0``)
    below ``dtol`` (1 + |f|) (a warm start near its optimum then stops after one or two
    evaluations; with f = -ln R of 5 to 30, 1e-10 leaves about 1e-9 of the rate), the line
    search fails, after ``max_iter`` iterations or ``max_eval`` evaluations, or at once if the
    loss at ``x0`` is not below ``cutoff`` (a restart that cannot beat a known value costs one
    evaluation). A run still without key (loss in the infeasible regime) after ``patience``
    iterations gives up.

    ``h0`` warm-starts the inverse Hessian (e.g. the previous point's along a sweep: a warm start
    then converges in a few steps); ``fresh0`` True treats it as an unscaled identity.

    One loop iteration is one evaluation of ``fun`` and its gradient (a line-search trial or the
    first trial of a new step), so ``fun`` is traced once and a vmapped batch advances in lockstep
    without nested loops.

    Returns:
        (x, f, n_iter, n_eval, h): the point, its loss, accepted iterations, evaluations and the
        final inverse Hessian approximation.
    """
    value_and_grad = _value_and_grad(fun, jnp.shape(x0)[0])
    max_eval = max_iter * 4 if max_eval is None else max_eval
    c1 = 1e-4

    def evaluate(x):
        f, g = value_and_grad(x)
        bad = ~jnp.isfinite(f)
        f = jnp.where(bad, jnp.inf, f)
        g = jnp.where(bad | ~jnp.isfinite(g), 0.0, g)
        return f, g

    def direction(h, g):
        p = -h @ g
        slope = g @ p
        descent = slope < 0.0
        decrement = jnp.where(descent, -0.5 * slope, jnp.inf)  # predicted decrease, g.h.g / 2
        p = jnp.where(descent, p, -g)
        slope = jnp.where(descent, slope, -(g @ g))
        scale = jnp.minimum(1.0, max_step / jnp.maximum(jnp.max(jnp.abs(p)), 1e-300))
        return p * scale, slope * scale, decrement

    x0 = jnp.asarray(x0, jnp.float64)
    d = x0.shape[0]
    eye = jnp.eye(d)
    zero = jnp.zeros(d)
    # The first iteration evaluates x0 itself (alpha = 0, f = inf accepts it), so that the loss
    # appears once in the traced program.
    i32 = functools.partial(jnp.asarray, dtype=jnp.int32)
    h_init = eye if h0 is None else jnp.asarray(h0, jnp.float64)
    fresh_init = jnp.asarray(h0 is None) if fresh0 is None else jnp.asarray(fresh0)
    state = _State(x0, jnp.asarray(jnp.inf), zero, h_init, zero, jnp.asarray(0.0), jnp.asarray(0.0),
                   i32(0), fresh_init, i32(-1), i32(0), jnp.asarray(False))

    def cond(s):
        return ~s.done

    def body(s):
        trial = s.x + s.alpha * s.p
        f_t, g_t = evaluate(trial)
        first = s.k < 0
        accepted = first | (f_t <= s.f + c1 * s.alpha * s.slope)
        # BFGS update with s = alpha p, y = g_t - g (skipped when the curvature is not positive)
        step = s.alpha * s.p
        y = g_t - s.g
        sy = step @ y
        yy = y @ y
        crossed = ~first & ((s.f >= _INFEASIBLE * 0.5) != (f_t >= _INFEASIBLE * 0.5))
        h0 = jnp.where(s.fresh & (sy > 0) & (yy > 0), (sy / jnp.where(yy > 0, yy, 1.0)) * eye, s.h)
        rho = 1.0 / jnp.where(sy > 0, sy, 1.0)
        v = eye - rho * jnp.outer(step, y)
        h_upd = v @ h0 @ v.T + rho * jnp.outer(step, step)
        update = ~first & (sy > 1e-12 * jnp.sqrt(step @ step) * jnp.sqrt(yy)) & ~crossed
        h_acc = jnp.where(crossed, eye, jnp.where(update, h_upd, s.h))
        fresh_acc = jnp.where(crossed, True, jnp.where(update, False, s.fresh))
        p_acc, slope_acc, decrement = direction(h_acc, g_t)
        small = ~first & ~crossed & ((s.f - f_t) <= ftol * (1.0 + jnp.abs(f_t)))
        # the quasi-Newton model predicts a negligible decrease (its inverse Hessian has been
        # updated or inherited: not a plain identity)
        settled = ~fresh_acc & (f_t < 0.5 * _INFEASIBLE) & (decrement <= dtol * (1.0 + jnp.abs(f_t)))
        converged = ((jnp.max(jnp.abs(g_t)) <= gtol) | small | settled | ~jnp.isfinite(f_t) | (s.k + 1 >= max_iter)
                     | (first & ~(f_t < cutoff)) | ((s.k + 1 >= patience) & (f_t >= 0.5 * _INFEASIBLE)))
        # Rejected: backtrack (minimizer of the quadratic through f(0), f'(0), f(alpha), kept in
        # [0.1, 0.5] alpha); give up after max_linesearch trials.
        denom = 2.0 * (f_t - s.f - s.slope * s.alpha)
        quad = -s.slope * s.alpha**2 / jnp.where(denom > 0, denom, 1.0)
        alpha_rej = jnp.clip(jnp.where(jnp.isfinite(quad) & (denom > 0), quad, 0.1 * s.alpha),
                             0.1 * s.alpha, 0.5 * s.alpha)
        failed = s.n_ls + 1 >= max_linesearch

        def pick(a, r):
            return jnp.where(accepted, a, r)

        n_eval = s.n_eval + 1
        return _State(
            x=pick(trial, s.x), f=pick(f_t, s.f), g=pick(g_t, s.g), h=pick(h_acc, s.h),
            p=pick(p_acc, s.p), slope=pick(slope_acc, s.slope), alpha=pick(1.0, alpha_rej),
            n_ls=pick(i32(0), s.n_ls + 1), fresh=pick(fresh_acc, s.fresh), k=pick(s.k + 1, s.k),
            n_eval=n_eval, done=pick(converged, failed) | (n_eval >= max_eval),
        )

    out = jax.lax.while_loop(cond, body, state)
    return out.x, out.f, jnp.maximum(out.k, 0), out.n_eval, out.h
