"""Run any optax transformation on a loss: the driver the optimizer's lanes share.

A solver is an optax transformation (``GradientTransformation`` or
``GradientTransformationExtraArgs``): qmc's BFGS (:func:`qmc.optimize.bfgs.bfgs`, the default),
``optax.lbfgs()``, ``optax.adam(...)`` or any chain. :func:`minimize` evaluates the loss and its
gradient at the start, then alternates ``update`` (given the value, the gradient and the loss
itself as ``value_fn``, for transformations with a line search) and one evaluation at the new
point, in one ``lax.while_loop``: traceable and vmappable, the loss traced once.

It stops when the solver's state says so (``done``, as qmc's BFGS does), when the gradient max
norm is below ``gtol`` (solvers without a ``done`` of their own), after ``max_eval`` evaluations,
or at once when the loss at the start is not below ``cutoff`` (a restart that cannot beat a known
value costs one evaluation). The result is the solver's accepted point where its state holds one
(``x`` and ``f``), else the best point evaluated.

:func:`solver_from` turns a name (``"bfgs"``, ``"lbfgs"``, or any transformation of ``optax``
such as ``"adam"``) and options into a solver and the driver's settings.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

from qmc.optimize.objective import value_and_grad as forward_value_and_grad

__all__ = ["minimize", "Minimum", "Run", "start", "advance", "result", "uses_value_fn", "solver_from",
           "DRIVER_OPTIONS", "forward_gradient_loss"]

DRIVER_OPTIONS = ("max_eval", "gtol")  # options of the driver, not of the transformation


class Minimum(NamedTuple):
    x: Any       # the point (d,)
    f: Any       # the loss there
    n_iter: Any  # accepted iterations (qmc's BFGS) or updates (other solvers)
    n_eval: Any  # evaluations of the loss and its gradient by the driver
    state: Any   # the solver's final state


def forward_gradient_loss(fun, d: int):
    """``fun`` whose reverse-mode gradient (what optax's line searches take with
    ``jax.value_and_grad``) is computed in forward mode (:func:`qmc.optimize.objective.value_and_grad`),
    as the driver's own. Traced once (``jax.closure_convert``) and replayed wherever it is called."""
    if d > 16:
        return fun
    vg, consts = jax.closure_convert(forward_value_and_grad(fun, d), jnp.zeros(d))

    @jax.custom_vjp
    def loss(x):
        return vg(x, *consts)[0]

    def loss_fwd(x):
        return vg(x, *consts)

    def loss_bwd(g, ct):
        return (ct * g,)

    loss.defvjp(loss_fwd, loss_bwd)
    return loss


class Run(NamedTuple):
    """A run of :func:`minimize` between two evaluations (what :func:`advance` carries)."""

    x: Any       # the point to evaluate next (d,)
    state: Any   # the solver's state
    n_eval: Any  # evaluations so far
    best_x: Any  # the best point evaluated
    best_f: Any  # its loss
    n_iter: Any  # updates so far
    stop: Any    # the run is over


def start(solver, x0, state=None) -> Run:
    """A run from ``x0`` (``state`` replaces ``solver.init(x0)``: a warm start)."""
    x0 = jnp.asarray(x0, jnp.float64)
    state = solver.init(x0) if state is None else state
    i32 = jnp.asarray(0, jnp.int32)
    return Run(x0, state, i32, x0, jnp.asarray(jnp.inf, jnp.float64), i32, jnp.asarray(False))


def uses_value_fn(state) -> bool:
    """Whether the solver's update takes the loss itself (``value_fn``: optax's line searches);
    qmc's BFGS carries its line search in its state (``done``)."""
    return not hasattr(state, "done")


def advance(solver, run: Run, f, g, *, max_eval: int = 160, gtol: float = 1e-7, cutoff=jnp.inf,
            value_fn=None) -> Run:
    """One step of a run: ``f`` and ``g`` are the loss and its gradient at ``run.x``; returns the
    run with the solver's next point to evaluate (or ``stop``). A non-finite value counts as +inf
    with a zero gradient. ``value_fn``: the loss, for solvers that search along a line themselves."""
    x, s, n, best_x, best_f, n_iter, _ = run
    bad = ~jnp.isfinite(f)
    f, g = jnp.where(bad, jnp.inf, f), jnp.where(bad | ~jnp.isfinite(g), 0.0, g)
    n = n + 1
    better = f < best_f
    best_x, best_f = jnp.where(better, x, best_x), jnp.where(better, f, best_f)
    own = not uses_value_fn(s)
    extra = {} if own else {"grad": g, "value_fn": value_fn}
    updates, s = solver.update(g, s, x, value=f, **extra)
    stop = (n >= max_eval) | ((n == 1) & ~(f < cutoff))
    stop = stop | (s.done if own else jnp.max(jnp.abs(g)) <= gtol)
    return Run(optax.apply_updates(x, updates), s, n, best_x, best_f, n_iter + 1, stop)


def result(run: Run) -> Minimum:
    """The run's answer: the solver's accepted point where its state holds one (``x`` and ``f``),
    else the best point evaluated."""
    state = run.state
    if hasattr(state, "x") and hasattr(state, "f") and hasattr(state, "k"):
        return Minimum(state.x, state.f, jnp.maximum(state.k, 0), run.n_eval, state)
    return Minimum(run.best_x, run.best_f, run.n_iter, run.n_eval, state)


def minimize(solver, fun, x0, *, max_eval: int = 160, gtol: float = 1e-7, cutoff=jnp.inf, state=None) -> Minimum:
    """Minimize ``fun`` (a scalar loss of a (d,) vector) from ``x0`` with the optax transformation
    ``solver`` (see the module docstring) in one ``lax.while_loop``. ``state`` replaces
    ``solver.init(x0)`` (a warm start)."""
    run = start(solver, x0, state)
    d = run.x.shape[0]
    value_and_grad = forward_value_and_grad(fun, d)
    value_fn = forward_gradient_loss(fun, d) if uses_value_fn(run.state) else None

    def body(r):
        return advance(solver, r, *value_and_grad(r.x), max_eval=max_eval, gtol=gtol, cutoff=cutoff,
                       value_fn=value_fn)

    return result(jax.lax.while_loop(lambda r: ~r.stop, body, run))


def solver_from(solver: Any = "bfgs", options: Mapping[str, Any] | None = None):
    """``(transformation, driver options)`` of a solver given by name or as an object.

    ``"bfgs"``: qmc's BFGS (:func:`qmc.optimize.bfgs.bfgs`; its options ``max_iter``,
    ``max_linesearch``, ``gtol``, ``ftol``, ``max_step``, ``patience``, ``dtol``; the driver's
    ``max_eval`` defaults to 4 ``max_iter``). ``"lbfgs"`` (or ``"optax"``): ``optax.lbfgs`` with
    its zoom line search. Any other name: the transformation of that name in ``optax``
    (``"adam"`` with ``learning_rate``, ...). An optax transformation object is used as it is.
    The driver's options (:data:`DRIVER_OPTIONS`) are taken out of ``options`` first.

    Raises:
        ValueError: an unknown name, or options the transformation does not take.
    """
    from qmc.optimize.bfgs import bfgs

    options = dict(options or {})
    driver = {k: options.pop(k) for k in DRIVER_OPTIONS if k in options}
    if not isinstance(solver, str):
        if options:
            raise ValueError(f"options {sorted(options)} are given to a solver object: build it with them")
        return solver, driver
    if solver == "bfgs":
        driver.setdefault("max_eval", 4 * int(options.get("max_iter", 40)))
        if "gtol" in driver:
            options["gtol"] = driver["gtol"]
        factory = bfgs
    else:
        name = "lbfgs" if solver == "optax" else solver
        factory = getattr(optax, name, None)
        if not callable(factory) or name.startswith("_"):
            raise ValueError(f"solver = {solver!r}: not 'bfgs' nor a transformation of optax")
    try:
        return factory(**options), driver
    except TypeError as err:
        raise ValueError(f"solver {solver!r}: {err}") from None
