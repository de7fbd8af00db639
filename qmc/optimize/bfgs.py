"""qmc's BFGS as an optax transformation: a dense quasi-Newton step with a backtracking line search.

:func:`bfgs` returns an ``optax.GradientTransformationExtraArgs``. Each ``update`` receives the
loss and its gradient at the point it proposed last (a line-search trial, or the first trial of a
new step) and proposes the next one, so every call is one evaluation of the loss: a driver
(:func:`qmc.optimize.minimize.minimize`) traces the loss once and a vmapped batch advances in
lockstep, with no loop nested in another.

Dense inverse Hessian (theta has at most 2k dimensions), Armijo backtracking (c1 = 1e-4) with
safeguarded quadratic interpolation, steps capped in the max norm; the inverse Hessian starts as
the identity, is rescaled by s.y / y.y at its first update (Nocedal and Wright, Eq. (6.20)), and
is reset when the loss crosses between the feasible and the infeasible regime
(:data:`qmc.optimize.objective.INFEASIBLE`). The state says when the run is over (``done``).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax.numpy as jnp
import optax

from qmc.optimize.objective import INFEASIBLE as _INFEASIBLE

__all__ = ["bfgs", "BFGSState", "warm_start", "minimize_bfgs"]


class BFGSState(NamedTuple):
    x: Any       # accepted point (d,)
    f: Any       # loss there
    g: Any       # gradient there (d,)
    h: Any       # inverse Hessian approximation (d, d)
    p: Any       # search direction (d,), capped
    slope: Any   # g . p
    alpha: Any   # step length being tried
    n_ls: Any    # trials of the current line search
    fresh: Any   # h is a plain identity: rescale it at the next update
    k: Any       # accepted iterations (-1 before the first evaluation)
    done: Any    # the run is over (converged, the line search failed, or a limit)


def bfgs(*, max_iter: int = 40, max_linesearch: int = 20, gtol: float = 1e-7, ftol: float = 1e-12,
         max_step: float = 2.0, patience: int = 15, dtol: float = 1e-10) -> optax.GradientTransformationExtraArgs:
    """qmc's BFGS (see the module docstring) as an optax transformation.

    The run is over (``state.done``) when the gradient max norm is below ``gtol``, the loss
    decrease below ``ftol`` (1 + |f|), the decrease the quasi-Newton model predicts (g.H.g / 2,
    once H is not a plain identity: updated, or inherited through :func:`warm_start`) below
    ``dtol`` (1 + |f|) (a warm start near its optimum then stops after one or two evaluations;
    with f = -ln R of 5 to 30, 1e-10 leaves about 1e-9 of the rate), the line search fails
    (``max_linesearch`` trials), after ``max_iter`` accepted iterations, or when a run still
    without key (loss in the infeasible regime) has made ``patience`` iterations.

    ``update(grad, state, params, *, value)``: ``params`` is the point the last update proposed
    (the start at the first call), ``value`` and ``grad`` the loss and its gradient there.
    """
    c1 = 1e-4

    def direction(h, g):
        p = -h @ g
        slope = g @ p
        descent = slope < 0.0
        decrement = jnp.where(descent, -0.5 * slope, jnp.inf)  # predicted decrease, g.h.g / 2
        p = jnp.where(descent, p, -g)
        slope = jnp.where(descent, slope, -(g @ g))
        scale = jnp.minimum(1.0, max_step / jnp.maximum(jnp.max(jnp.abs(p)), 1e-300))
        return p * scale, slope * scale, decrement

    def init_fn(params):
        x0 = jnp.asarray(params, jnp.float64)
        d = x0.shape[0]
        zero = jnp.zeros(d)
        i32 = functools.partial(jnp.asarray, dtype=jnp.int32)
        f64 = functools.partial(jnp.asarray, dtype=jnp.float64)  # not weakly typed: one signature
        return BFGSState(x0, f64(jnp.inf), zero, jnp.eye(d), zero, f64(0.0), f64(0.0), i32(0), jnp.asarray(True),
                         i32(-1), jnp.asarray(False))

    def update_fn(updates, state, params=None, *, value, **extra):
        del extra
        s, g_t, f_t, trial = state, updates, value, params
        eye = jnp.eye(trial.shape[0])
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
                     | ((s.k + 1 >= patience) & (f_t >= 0.5 * _INFEASIBLE)))
        # Rejected: backtrack (minimizer of the quadratic through f(0), f'(0), f(alpha), kept in
        # [0.1, 0.5] alpha); give up after max_linesearch trials.
        denom = 2.0 * (f_t - s.f - s.slope * s.alpha)
        quad = -s.slope * s.alpha**2 / jnp.where(denom > 0, denom, 1.0)
        alpha_rej = jnp.clip(jnp.where(jnp.isfinite(quad) & (denom > 0), quad, 0.1 * s.alpha),
                             0.1 * s.alpha, 0.5 * s.alpha)
        failed = s.n_ls + 1 >= max_linesearch

        def pick(a, r):
            return jnp.where(accepted, a, r)

        new = BFGSState(
            x=pick(trial, s.x), f=pick(f_t, s.f), g=pick(g_t, s.g), h=pick(h_acc, s.h), p=pick(p_acc, s.p),
            slope=pick(slope_acc, s.slope), alpha=pick(1.0, alpha_rej), n_ls=pick(jnp.asarray(0, jnp.int32), s.n_ls + 1),
            fresh=pick(fresh_acc, s.fresh), k=pick(s.k + 1, s.k), done=pick(converged, failed),
        )
        # the next trial: one full step from the accepted point, or a shorter one from the old point
        next_trial = new.x + new.alpha * new.p
        return next_trial - trial, new

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def warm_start(state, h0=None, fresh0=None):
    """A BFGS state that starts from the inverse Hessian ``h0`` (e.g. the previous point's along a
    sweep: a warm start then converges in a few steps); ``fresh0`` True treats it as an unscaled
    identity. Other solvers' states are returned unchanged (they keep no curvature)."""
    if not isinstance(state, BFGSState) or h0 is None:
        return state
    fresh = jnp.asarray(False) if fresh0 is None else jnp.asarray(fresh0)
    return state._replace(h=jnp.asarray(h0, jnp.float64), fresh=fresh)


def minimize_bfgs(fun, x0, *, max_iter: int = 40, max_linesearch: int = 20, gtol: float = 1e-7,
                  ftol: float = 1e-12, max_step: float = 2.0, max_eval: int | None = None,
                  patience: int = 15, cutoff=jnp.inf, h0=None, fresh0=None, dtol: float = 1e-10):
    """Minimize ``fun`` from ``x0`` with :func:`bfgs` (traceable, vmappable); stops at once if the
    loss at ``x0`` is not below ``cutoff``, and after ``max_eval`` evaluations (default 4
    ``max_iter``).

    Returns:
        (x, f, n_iter, n_eval, h): the point, its loss, accepted iterations, evaluations and the
        final inverse Hessian approximation.
    """
    from qmc.optimize.minimize import minimize

    solver = bfgs(max_iter=max_iter, max_linesearch=max_linesearch, gtol=gtol, ftol=ftol, max_step=max_step,
                  patience=patience, dtol=dtol)
    state = warm_start(solver.init(jnp.asarray(x0, jnp.float64)), h0, fresh0)
    out = minimize(solver, fun, x0, max_eval=max_iter * 4 if max_eval is None else max_eval, cutoff=cutoff,
                   state=state)
    return out.x, out.f, out.n_iter, out.n_eval, out.state.h
