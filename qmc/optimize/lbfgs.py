"""optax's L-BFGS with its zoom line search, one start, traceable and vmappable (``solver="optax"``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qmc.optimize.objective import INFEASIBLE as _INFEASIBLE
from qmc.optimize.objective import value_and_grad as _value_and_grad

__all__ = ["minimize_optax"]


def _with_forward_gradient(fun, x0):
    """``fun`` whose reverse-mode gradient (what optax's line search takes with
    ``jax.value_and_grad``) is computed in forward mode (:func:`_value_and_grad`), as the default
    solver's. The value-and-gradient program is traced once (``jax.closure_convert``) and replayed
    wherever optax calls it."""
    d = jnp.shape(x0)[0]
    if d > 16:
        return fun
    value_and_grad, consts = jax.closure_convert(_value_and_grad(fun, d), x0)

    @jax.custom_vjp
    def loss(x):
        return value_and_grad(x, *consts)[0]

    def loss_fwd(x):
        return value_and_grad(x, *consts)

    def loss_bwd(g, ct):
        return (ct * g,)

    loss.defvjp(loss_fwd, loss_bwd)
    return loss


def minimize_optax(fun, x0, *, max_iter: int = 40, gtol: float = 1e-7, ftol: float = 1e-12,
                   patience: int = 15, cutoff=jnp.inf, memory_size: int = 10):
    """Minimize ``fun`` from ``x0`` with ``optax.lbfgs()`` (traceable, vmappable).

    optax's L-BFGS with its default zoom line search (strong Wolfe conditions, at most 20 steps),
    run as in optax's documented example: ``optax.value_and_grad_from_state`` and
    ``update(grad, state, x, value=, grad=, value_fn=)`` in a ``jax.lax.while_loop``. Gradients
    are forward-mode (:func:`_with_forward_gradient`). Stops when the gradient max norm is below
    ``gtol``, the loss decrease of an iteration below ``ftol`` (1 + |f|) (this includes a failed
    line search), after ``max_iter`` iterations, after ``patience`` iterations still without key
    (loss in the infeasible regime), or at once if the loss at ``x0`` is not below ``cutoff``, as
    :func:`minimize_bfgs`.

    The compiled loop holds the loss's value-and-gradient program three times (the state's
    fallback evaluation, and the bracketing and zoom phases of the line search; traced once and
    replayed), so it compiles about twice as slowly as :func:`minimize_bfgs`'s. Under ``vmap``
    each ``lax.cond`` of optax's loop becomes a ``select`` that computes both branches (the
    gradient at the current point again, both phases of the line search); ``n_eval`` counts the
    evaluations the algorithm uses (the start and one per line-search step), not those computed.

    Returns:
        (x, f, n_iter, n_eval): the point, its loss, iterations and evaluations.
    """
    import optax

    x0 = jnp.asarray(x0, jnp.float64)
    loss = _with_forward_gradient(fun, x0)
    opt = optax.lbfgs(memory_size=memory_size)
    value_and_grad = optax.value_and_grad_from_state(loss)

    def cond(carry):
        _, state, f_prev, _, stop = carry
        k = optax.tree.get(state, "count")
        f = optax.tree.get(state, "value")
        g = optax.tree.get(state, "grad")
        small = (f_prev - f) <= ftol * (1.0 + jnp.abs(f))
        no_key = (k >= patience) & (f >= 0.5 * _INFEASIBLE)
        started = k > 0
        return ~started | (~stop & jnp.isfinite(f) & (k < max_iter) & (jnp.max(jnp.abs(g)) > gtol) & ~small & ~no_key)

    def step(carry):
        x, state, _, n_eval, _ = carry
        f, g = value_and_grad(x, state=state)  # the first time: at x0 (the state holds no value)
        updates, new_state = opt.update(g, state, x, value=f, grad=g, value_fn=loss)
        # a start whose loss is not below the cutoff stays where it is
        stop = (optax.tree.get(state, "count") == 0) & ~(f < cutoff)
        new_state = jax.tree_util.tree_map(lambda a, b: jnp.where(stop, a, b),
                                           optax.tree.set(new_state, value=f, grad=g), new_state)
        n_ls = jnp.where(stop, 0, optax.tree.get(new_state, "num_linesearch_steps")).astype(jnp.int32)
        return jnp.where(stop, x, optax.apply_updates(x, updates)), new_state, f, n_eval + n_ls, stop

    init = (x0, opt.init(x0), jnp.asarray(jnp.inf), jnp.asarray(1, jnp.int32), jnp.asarray(False))
    x, state, _, n_eval, stop = jax.lax.while_loop(cond, step, init)
    f = optax.tree.get(state, "value")
    n_iter = jnp.where(stop, 0, optax.tree.get(state, "count")).astype(jnp.int32)
    return x, jnp.where(jnp.isfinite(f), f, jnp.inf), n_iter, n_eval
