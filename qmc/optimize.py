"""Gradient optimization of protocol parameters for a given link (JAX autodiff, batched).

The free parameters of a protocol (signal intensity, decoy intensities, their probabilities, the
basis probability) are mapped from an unconstrained vector theta onto the feasible set, so every
iterate satisfies the constraints by construction (:func:`to_protocol`):

* intensities, weakest last: mu_j = sum_{i > j} mu_i + 1e-6 + softplus(theta_j). They stay
  strictly decreasing and satisfy Lim et al.'s mu_1 > mu_2 + mu_3 (PRA 89, 022307 (2014)). The
  weakest intensity (vacuum, or Lim's mu_3) keeps the user's value unless
  ``Space.intensities == "all"`` (then mu_k = 1e-6 + softplus(theta_k), e.g. Rusca's decoy mu_2);
* probabilities of the intensities: 1e-6 + (1 - k 1e-6) softmax(theta_1, ..., theta_{k-1}, 0)
  (the simplex; the last logit is pinned to 0 so that the map has no flat direction);
* the basis probability p_z: 1e-4 + (1 - 1e-4 - 1e-6) sigmoid(theta).

The floors (1e-6 between intensities, 1e-6 per probability, p_z in [1e-4, 1 - 1e-6]) keep the
decoy bounds computable: as mu_1 -> mu_2 + mu_3 the denominator of Lim's s_1 bound (Eq. (3)),
(mu_2 - mu_3)(mu_1 - mu_2 - mu_3), is lost to rounding, and as some p_k -> 0 the Hoeffding terms
e^k / p_k (n_k +- delta) blow up; in such corners a bound can come out as rounding noise with a
huge positive value, which an optimizer would otherwise find and exploit. No optimum of a
physical link lies beyond them.

Objective. The loss is -ln R where the rate R is positive. Where it is clipped at 0 the loss is a
constant above every feasible value (2000 > -ln 1e-300) plus, for analyses that report the
unclipped key length (finite-key and asymptotic two/one-decoy), ln of how far l/N is below 0, so
a start without key still moves toward one. Value and gradient are finite everywhere (the
analyses guard max(R, 0), square roots, logarithms and H2(0); the loss uses double ``where``).

Algorithm. BFGS on theta (dense inverse Hessian: theta has at most 2k dimensions; gradients by
forward-mode autodiff, d tangents of one ``jvp``), Armijo backtracking with safeguarded
quadratic interpolation, step length capped in theta units, stopped when the loss decrease, the
decrease the quasi-Newton model predicts or the gradient is negligible; each loop iteration is one
evaluation, so the loss is traced once.
:func:`maximize` runs several starts per link side by side (the user's protocol and the best of
a pool of spread-out starts, screened by loss value), vmapped over links. :func:`maximize_sweep`
adds continuation along a sweep: chains of consecutive points, each point warm-started from the
previous optimum (extrapolated, with its inverse Hessian), a spread-out start every few points,
then passes that restart every point from its neighbours' optima while that improves any point.
Everything is one ``jax.jit`` call.

``solver="optax"`` replaces the BFGS loop by ``optax.lbfgs()`` with its zoom line search
(:func:`minimize_optax`) on the same loss, reparameterization, starts and drivers. It is the
slower choice on a CPU: optax's loop holds the loss's gradient program three times (state
fallback, bracketing and zoom phases of the line search), so it compiles about twice as long,
and under ``vmap`` its ``lax.cond`` branches all run, so an iteration costs several gradients.

A point where no start gives a positive rate returns rate 0 with the analysis' reason
(``Optimum.found`` is False there).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from qmc._pytree import get_path, pytree_dataclass, replace_path
from qmc.validation import ValidationError

__all__ = [
    "Space", "default_space", "to_protocol", "from_protocol", "objective", "starting_points",
    "maximize", "maximize_sweep", "Optimum", "minimize_bfgs", "minimize_optax", "SOLVERS", "check_block_engine",
]

_INTENSITY_MODES = ("none", "signal", "decoys", "all")
GAP_MIN = 1e-6  # smallest gap between an intensity and the sum of the weaker ones
P_MIN = 1e-6  # smallest intensity probability
P_Z_RANGE = (1e-4, 1.0 - 1e-6)  # range of the basis probability
_INFEASIBLE = 2000.0  # loss where R = 0: above -ln(R) for every R >= 1e-300
_LOG_TINY = -700.0


@dataclasses.dataclass(frozen=True)
class Space:
    """Which protocol parameters are free (a static description, hashable).

    Attributes:
        intensities: ``"signal"`` (only the signal intensity), ``"decoys"`` (all but the weakest,
            which keeps the user's value), ``"all"``, or ``"none"``.
        probabilities: optimize the intensity probabilities (on the simplex).
        p_z: optimize the basis probability.
    """

    intensities: str = "signal"
    probabilities: bool = False
    p_z: bool = False

    def __post_init__(self) -> None:
        if self.intensities not in _INTENSITY_MODES:
            raise ValueError(f"Space.intensities = {self.intensities!r}: must be one of {', '.join(_INTENSITY_MODES)}")

    def n_intensities_free(self, n_intensities: int) -> int:
        return {"none": 0, "signal": 1, "decoys": n_intensities - 1, "all": n_intensities}[self.intensities]

    def size(self, n_intensities: int) -> int:
        """Dimension of theta for a protocol with ``n_intensities`` intensities."""
        n_p = n_intensities - 1 if self.probabilities else 0
        return self.n_intensities_free(n_intensities) + n_p + (1 if self.p_z else 0)

    def names(self, n_intensities: int) -> tuple[str, ...]:
        """Names of the free parameters (``mu1``, ``p_mu1``, ``p_z``, ...) in protocol order."""
        out = [f"mu{j + 1}" for j in range(self.n_intensities_free(n_intensities))]
        if self.probabilities:
            out += [f"p_mu{j + 1}" for j in range(n_intensities)]
        if self.p_z:
            out.append("p_z")
        return tuple(out)


def default_space(analysis, protocol=None) -> Space:
    """What has an interior optimum for ``analysis``.

    Finite-key analyses (``analysis.finite`` true): intensities, their probabilities and p_z. The
    weakest intensity stays at the user's value when there are three or more (vacuum, or Lim's
    mu_3 = 2e-4); with two (Rusca's one decoy) both intensities are free.

    Asymptotic analyses: only the signal intensity. Their rates rise as the decoy probabilities
    and the weak decoy intensity shrink (and as p_z -> 1 where only Z gives key), so those have no
    interior optimum and are the user's choice.
    """
    if getattr(analysis, "finite", False):
        k = getattr(type(analysis), "n_intensities", None)
        if k is None and protocol is not None:
            k = int(np.shape(protocol.intensities)[0])
        return Space("all" if k == 2 else "decoys", True, True)
    return Space("signal", False, False)


# ----------------------------------------------------------------------------------------------
# theta <-> protocol
# ----------------------------------------------------------------------------------------------


def _softplus_inv(y, xp=jnp):
    y = xp.maximum(y, 1e-12)
    return y + xp.log(-xp.expm1(-y))


def to_protocol(theta, protocol, space: Space):
    """The feasible protocol of an unconstrained vector ``theta`` (see the module docstring).

    Fixed parameters keep the values of ``protocol``. Traceable; ``theta`` has shape (d,) with
    d = ``space.size(k)``.
    """
    theta = jnp.asarray(theta, jnp.float64)
    mu = jnp.asarray(protocol.intensities, jnp.float64)
    k = mu.shape[0]
    i = 0
    n_free = space.n_intensities_free(k)
    replace: dict[str, Any] = {}
    if n_free:
        gaps = GAP_MIN + jax.nn.softplus(theta[:n_free])
        i = n_free
        new = [None] * k
        tail = jnp.asarray(0.0, jnp.float64)
        for j in range(k - 1, -1, -1):  # weakest first: sum of all weaker intensities + a gap
            new[j] = tail + gaps[j] if j < n_free else mu[j]
            tail = tail + new[j]
        replace["intensities"] = jnp.stack(new)
    if space.probabilities:
        logits = jnp.concatenate([theta[i : i + k - 1], jnp.zeros(1)])
        replace["probabilities"] = P_MIN + (1.0 - k * P_MIN) * jax.nn.softmax(logits)
        i += k - 1
    if space.p_z:
        lo, hi = P_Z_RANGE
        replace["p_z"] = lo + (hi - lo) * jax.nn.sigmoid(theta[i])
        i += 1
    return dataclasses.replace(protocol, **replace) if replace else protocol


def from_protocol(protocol, space: Space, xp=jnp):
    """Unconstrained vector whose image under :func:`to_protocol` is (close to) ``protocol``.

    Values outside the feasible set are moved just inside it (onto the floors). ``xp=numpy``
    computes it on concrete values without dispatching JAX operations.
    """
    mu = xp.asarray(protocol.intensities, dtype=xp.float64)
    k = mu.shape[0]
    parts = []
    n_free = space.n_intensities_free(k)
    if n_free:
        tails = xp.concatenate([xp.cumsum(mu[::-1])[::-1][1:], xp.zeros(1)])  # sum_{i > j} mu_i
        parts.append(_softplus_inv(mu - tails - GAP_MIN, xp)[:n_free])
    if space.probabilities:
        p = xp.asarray(protocol.probabilities, dtype=xp.float64)
        logp = xp.log(xp.maximum((p - P_MIN) / (1.0 - k * P_MIN), 1e-12))
        parts.append(logp[:-1] - logp[-1])
    if space.p_z:
        lo, hi = P_Z_RANGE
        u = xp.clip((xp.asarray(protocol.p_z, dtype=xp.float64) - lo) / (hi - lo), 1e-12, 1.0 - 1e-12)
        parts.append(xp.reshape(xp.log(u) - xp.log1p(-u), (1,)))
    return xp.concatenate(parts) if parts else xp.zeros((0,))


# ----------------------------------------------------------------------------------------------
# Objective
# ----------------------------------------------------------------------------------------------


def _loss(out):
    """-ln R where R > 0, else _INFEASIBLE + ln(max(-l/N, 0)) (the unclipped rate, if reported)."""
    rate = jnp.asarray(out.rate, jnp.float64)
    positive = rate > 0.0
    feasible = -jnp.log(jnp.where(positive, rate, 1.0))
    key_length = getattr(out, "key_length", None)
    n_pulses = getattr(out, "n_pulses", None)
    if key_length is not None and n_pulses is not None:
        n_ok = n_pulses > 0.0
        raw = jnp.where(n_ok, key_length / jnp.where(n_ok, n_pulses, 1.0), 0.0)
        short = jnp.maximum(-raw, 0.0)
        has = short > 0.0
        below = jnp.where(has, jnp.log(jnp.where(has, short, 1.0)), _LOG_TINY)
    else:
        below = _LOG_TINY
    return jnp.where(positive, feasible, _INFEASIBLE + jnp.maximum(below, _LOG_TINY))


def objective(theta, link, protocol, analysis, space: Space):
    """The loss the optimizer minimizes: -ln(key rate) at ``to_protocol(theta)`` (see the module
    docstring for points without key). Finite with a finite gradient for every theta."""
    return _loss(analysis.key_rate(link, to_protocol(theta, protocol, space)))


# ----------------------------------------------------------------------------------------------
# BFGS, one start (vmapped by the callers)
# ----------------------------------------------------------------------------------------------


def _value_and_grad(fun, d: int):
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


# ----------------------------------------------------------------------------------------------
# optax's L-BFGS, one start (the alternative solver, ``solver="optax"``)
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------


@pytree_dataclass
class Optimum:
    """Result of :func:`maximize` or :func:`maximize_sweep` (leaves batched like the input).

    Attributes:
        protocol: the optimal protocol (feasible by construction).
        rate: the analysis' output there (``KeyRate`` or ``FiniteKeyRate``); ``rate.rate`` is 0,
            with the analysis' reason in ``rate.reason``, where no start found a positive rate.
        theta: the unconstrained optimum.
        found: True where a positive rate was found.
        n_eval: evaluations of the loss and its gradient spent on this point (all starts and
            continuation rounds).
    """

    protocol: Any
    rate: Any
    theta: Any
    found: Any
    n_eval: Any = 0

    def parameters(self, space: Space | None = None) -> dict[str, np.ndarray]:
        """Flat dict of numpy arrays: ``mu1``.., ``p_mu1``.., ``p_z`` (all of them, free or not)."""
        mu = np.asarray(self.protocol.intensities)
        p = np.asarray(self.protocol.probabilities)
        out = {f"mu{j + 1}": mu[..., j] for j in range(mu.shape[-1])}
        out.update({f"p_mu{j + 1}": p[..., j] for j in range(p.shape[-1])})
        out["p_z"] = np.asarray(self.protocol.p_z)
        return out


# ----------------------------------------------------------------------------------------------
# Starting points
# ----------------------------------------------------------------------------------------------


def starting_points(protocol, space: Space, n_starts: int, seed: int = 0) -> np.ndarray:
    """The user's protocol plus ``n_starts - 1`` spread-out feasible starts, shape (n, d).

    The extra starts are drawn (fixed seed, stratified per coordinate) in natural units: gaps
    between consecutive intensities log-uniform in [0.003, 1] (signal) and [0.005, 0.4] (decoys),
    the signal probability uniform in [0.4, 0.95] with the rest split at random, p_z uniform in
    [0.3, 0.97]; fixed parameters keep the user's values.
    """
    theta0 = from_protocol(protocol, space, np)
    n_extra = max(int(n_starts) - 1, 0)
    if n_extra == 0 or theta0.size == 0:
        return np.repeat(theta0[None, :], max(int(n_starts), 1), axis=0)
    rng = np.random.default_rng(seed)
    k = int(np.shape(protocol.intensities)[0])

    def strata():  # one value per stratum of [0, 1), shuffled (a Latin hypercube column)
        return (rng.permutation(n_extra) + rng.uniform(size=n_extra)) / n_extra

    rows = []
    mu_user = np.asarray(protocol.intensities, np.float64)
    n_free = space.n_intensities_free(k)
    cols = {}
    if n_free:
        for j in range(n_free):
            lo, hi = (0.003, 1.0) if j == 0 else (0.005, 0.4)
            cols[f"gap{j}"] = lo * (hi / lo) ** strata()
    if space.probabilities:
        cols["p1"] = 0.4 + 0.55 * strata()
        cols["split"] = rng.dirichlet(np.ones(max(k - 1, 1)), size=n_extra)
    if space.p_z:
        cols["p_z"] = 0.3 + 0.67 * strata()
    for r in range(n_extra):
        mu = mu_user.copy()
        if n_free:
            tail = 0.0
            for j in range(k - 1, -1, -1):
                if j < n_free:
                    mu[j] = tail + cols[f"gap{j}"][r]
                tail += mu[j]
        replace: dict[str, Any] = {"intensities": mu}
        if space.probabilities:
            p1 = cols["p1"][r] if k > 1 else 1.0
            replace["probabilities"] = np.concatenate([[p1], (1.0 - p1) * cols["split"][r]])[:k]
        if space.p_z:
            replace["p_z"] = cols["p_z"][r]
        rows.append(from_protocol(dataclasses.replace(protocol, **replace), space, np))
    return np.concatenate([theta0[None, :], np.stack(rows)]).astype(np.float64)


# ----------------------------------------------------------------------------------------------
# Drivers
# ----------------------------------------------------------------------------------------------

_BFGS_DEFAULTS = dict(max_iter=40, max_linesearch=20, gtol=1e-7, ftol=1e-12, max_step=2.0, patience=15, dtol=1e-10)
_OPTAX_DEFAULTS = dict(max_iter=40, gtol=1e-7, ftol=1e-12, patience=15, memory_size=10)
SOLVERS = ("bfgs", "optax")  # maximize(solver=...): qmc's dense BFGS (default), optax.lbfgs()


def _options(bfgs: Mapping[str, Any], solver: str = "bfgs") -> tuple:
    if solver not in SOLVERS:
        raise ValueError(f"solver = {solver!r}: must be one of {', '.join(repr(s) for s in SOLVERS)}")
    defaults, extra = (_BFGS_DEFAULTS, {"max_eval"}) if solver == "bfgs" else (_OPTAX_DEFAULTS, set())
    unknown = set(bfgs) - set(defaults) - extra
    if unknown:
        raise TypeError(f"unknown options of solver {solver!r}: {', '.join(sorted(unknown))}")
    return tuple(sorted({**defaults, **bfgs}.items()))


def _pad(x, n_pad):
    """Repeat the last row ``n_pad`` times (leading axis)."""
    return jnp.concatenate([x, jnp.repeat(x[-1:], n_pad, axis=0)]) if n_pad else x


@functools.partial(jax.jit, static_argnames=("paths", "space", "bfgs", "lanes", "chain_length", "continuation",
                                             "explore_every", "sequential_lanes", "solver"))
def _optimize(tree, batch, pool, paths, space, bfgs, lanes, chain_length, continuation, explore_every=1,
              sequential_lanes=False, solver="bfgs"):
    """Optima of P problems: chains of ``chain_length`` consecutive points, vmapped over chains.

    Args:
        tree: ``{"link", "analysis", "protocol"}``.
        batch: (P, n) values at ``paths``, or (``paths`` None) a Link whose leaves have a leading
            axis P (it replaces ``tree["link"]``).
        pool: (P, S, d) listed starts per point (S >= lanes; start 0 is the user's protocol).
        lanes: BFGS runs per point (side by side, or one after the other if ``sequential_lanes``).
        chain_length: consecutive points solved one after the other (a ``lax.scan``), each
            warm-started from the previous point's optimum; the P / chain_length chains run side
            by side (``vmap``). 1: every point at once, no warm start.
        continuation: passes after the first, alternately backward and forward, each run only if
            a vectorized check (the loss of every point at its neighbours' optima, values only)
            finds a point to improve: each point restarts from its two neighbours' optima (lanes 0
            and 1), and a lane stops after one evaluation unless its start already beats the
            point's own optimum.
        explore_every: along a chain, the lanes other than the warm start run at every
            ``explore_every``-th point only (and at the chain's first); elsewhere they stop after
            one evaluation.
        solver: ``"bfgs"`` (:func:`minimize_bfgs`) or ``"optax"`` (:func:`minimize_optax`: it
            keeps no inverse Hessian, so its lanes pass on the one they were given).

    First pass: lane 0 starts from the previous point's optimum (from ``pool[:, 0]``, the user's
    protocol, at the first point of a chain) with its inverse Hessian; the other lanes, where they
    explore, from the best starts of the pool after screening it by loss value (a coarse search;
    the continuation passes carry the best basin along). The loss and its gradient are traced
    once, the screening loss once.
    """
    bfgs = dict(bfgs)
    n_points, n_pool, d = pool.shape
    m = chain_length
    n_chains = -(-n_points // m)
    n_pad = n_chains * m - n_points
    batch = jax.tree_util.tree_map(lambda x: _pad(x, n_pad), batch)
    pool = _pad(pool, n_pad)
    total = n_chains * m
    chain_first = jnp.arange(n_chains) * m  # (C,)

    def setup(item):
        if paths is None:
            return {**tree, "link": item}
        t = tree
        for i, path in enumerate(paths):
            t = replace_path(t, path, item[i])
        return t

    def solve_one(item, start, cutoff, h0, fresh0):
        t = setup(item)
        loss = functools.partial(objective, link=t["link"], protocol=t["protocol"], analysis=t["analysis"],
                                 space=space)
        if solver == "optax":
            x, f, n_iter, n_eval = minimize_optax(loss, start, cutoff=cutoff, **bfgs)
            return x, f, n_iter, n_eval, h0
        return minimize_bfgs(loss, start, cutoff=cutoff, h0=h0, fresh0=fresh0, **bfgs)

    def solve_lanes(items, lane_starts, cutoff, h0, fresh0):
        """BFGS for every (chain, lane): (C, L, ...) outputs."""
        if not sequential_lanes:  # lanes side by side, in lockstep (accelerators)
            per_point = jax.vmap(solve_one, in_axes=(None, 0, 0, 0, 0))
            return jax.vmap(per_point)(items, lane_starts, cutoff, h0, fresh0)
        # One lane after the other (CPU: a lockstep lane costs what it computes even when its run
        # is over); a lane that no chain runs (cutoff -inf everywhere) is skipped outright.
        def lane(l, acc):
            def run():
                return jax.vmap(solve_one)(items, lane_starts[:, l], cutoff[:, l], h0[:, l], fresh0[:, l])

            def skip():
                return (lane_starts[:, l], jnp.full(n_chains, jnp.inf), jnp.zeros(n_chains, jnp.int32),
                        jnp.zeros(n_chains, jnp.int32), h0[:, l])

            out = jax.lax.cond(jnp.any(cutoff[:, l] > -jnp.inf), run, skip)
            return tuple(a.at[:, l].set(o) for a, o in zip(acc, out))

        init = (lane_starts, jnp.full((n_chains, lanes), jnp.inf), jnp.zeros((n_chains, lanes), jnp.int32),
                jnp.zeros((n_chains, lanes), jnp.int32), h0)
        return jax.lax.fori_loop(0, lanes, lane, init)

    def screen_point(item, starts):
        t = setup(item)
        return jax.vmap(lambda s: objective(s, t["link"], t["protocol"], t["analysis"], space))(starts)

    def step(carry, j):
        best_theta, best_f, best_h, n_eval, improved, p = carry
        forward = p % 2 == 0
        offset = jnp.where(forward, j, m - 1 - j)
        idx = chain_first + offset  # (C,) the points of this step
        prev = jnp.clip(jnp.where(forward, idx - 1, idx + 1), 0, total - 1)
        nxt = jnp.clip(jnp.where(forward, idx + 1, idx - 1), 0, total - 1)
        first_pass = p == 0
        # First pass: the warm start in lane 0, screened starts of the pool in the others. Later
        # passes: the neighbours' optima.
        lane_ids = jnp.arange(lanes)
        items = jax.tree_util.tree_map(lambda x: x[idx], batch)
        rows = pool[idx]  # (C, S, d)
        # Lanes other than 0 explore at every explore_every-th step (by offset, so that all chains
        # explore in the same steps: a step costs its slowest lane) and wherever the warm start
        # has no key.
        explore = ((offset % explore_every == 0) | (lane_ids[None, :] == 0)
                   | (best_f[prev] >= 0.5 * _INFEASIBLE)[:, None])  # (C, L)
        # Exploring lanes start from the best starts of the pool by loss (values only; the
        # user's start, pool[0], is lane 0's at a chain's first point). A real branch: skipped
        # in steps where no lane explores.
        if lanes > 1:
            scores = jax.lax.cond(first_pass & jnp.any(explore[:, 1:]), lambda: jax.vmap(screen_point)(items, rows),
                                  lambda: jnp.zeros((n_chains, n_pool)))
            scores = jnp.where(jnp.arange(n_pool)[None, :] == 0, jnp.inf, jnp.nan_to_num(scores, nan=jnp.inf))
            order = jnp.argsort(scores, axis=1)  # (C, S), best first
            pick = jnp.where(lane_ids[None, :] == 0, 0, order[:, jnp.clip(lane_ids - 1, 0, n_pool - 1)])  # (C, L)
        else:
            pick = jnp.zeros((n_chains, 1), jnp.int32)
        listed = jnp.take_along_axis(rows, pick[:, :, None], axis=1)  # (C, L, d)
        warm = ((offset > 0) & (lane_ids == 0))[None, :, None]
        # warm start: the previous point's optimum, extrapolated along the chain (secant predictor)
        prev2 = jnp.clip(jnp.where(forward, idx - 2, idx + 2), 0, total - 1)
        predicted = jnp.where((offset >= 2), 2.0 * best_theta[prev] - best_theta[prev2], best_theta[prev])
        predicted = jnp.where(jnp.isfinite(best_f[prev2])[:, None] & (best_f[prev2] < 0.5 * _INFEASIBLE)[:, None]
                              & (best_f[prev] < 0.5 * _INFEASIBLE)[:, None], predicted, best_theta[prev])
        listed = jnp.where(warm, predicted[:, None, :], listed)
        even = (lane_ids % 2 == 0)[None, :, None]  # even lanes: previous neighbour; odd: next
        neighbour = jnp.where(even, best_theta[prev][:, None, :], best_theta[nxt][:, None, :])
        lane_starts = jnp.where(first_pass, listed, neighbour)
        # Warm and neighbour starts bring their point's inverse Hessian; spread-out starts an identity.
        eye = jnp.broadcast_to(jnp.eye(d), (n_chains, lanes, d, d))
        h_prev, h_next = best_h[prev][:, None], best_h[nxt][:, None]
        h_listed = jnp.where(warm[..., None], h_prev, eye)
        h_neighbour = jnp.where(even[..., None], h_prev, h_next)
        h0 = jnp.where(first_pass, h_listed, h_neighbour)
        fresh0 = jnp.broadcast_to(first_pass & ~warm[..., 0], (n_chains, lanes))
        own = best_f[idx]
        # A restart must beat the point's own optimum (by 1e-6 of the rate) at its first
        # evaluation, except where the point has no key and the neighbour has one: then it runs
        # (near the edge a key can need a start that is no better by the unclipped rate).
        cutoff = jnp.where(own >= 0.5 * _INFEASIBLE, jnp.inf, own - 1e-6 * (1.0 + jnp.abs(own)))  # (C,)
        source_f = jnp.where(even[0, :, 0][None, :], best_f[prev][:, None], best_f[nxt][:, None])  # (C, L)
        # A neighbour without key is no start for a point without key: stop at once.
        hopeless = (own >= 0.5 * _INFEASIBLE)[:, None] & (source_f >= 0.5 * _INFEASIBLE)
        cutoff = jnp.where(first_pass, jnp.where(explore, jnp.inf, -jnp.inf),
                           jnp.where(hopeless, -jnp.inf, cutoff[:, None]))  # (C, L)
        theta, f, _, evals, h = solve_lanes(items, lane_starts, cutoff, h0, fresh0)  # (C, L, ...)
        f = jnp.where(jnp.isnan(f), jnp.inf, f)
        lane = jnp.argmin(f, axis=1)
        chains = jnp.arange(n_chains)
        f_new, theta_new = f[chains, lane], theta[chains, lane]
        better = f_new < own
        best_theta = best_theta.at[idx].set(jnp.where(better[:, None], theta_new, best_theta[idx]))
        best_f = best_f.at[idx].set(jnp.where(better, f_new, own))
        best_h = best_h.at[idx].set(jnp.where(better[:, None, None], h[chains, lane], best_h[idx]))
        n_eval = n_eval.at[idx].add(jnp.sum(evals, axis=1, dtype=jnp.int32))
        return (best_theta, best_f, best_h, n_eval, improved, p), None

    everywhere = jnp.arange(total)
    left, right = jnp.maximum(everywhere - 1, 0), jnp.minimum(everywhere + 1, total - 1)
    # the left neighbour was the warm start in the first pass, except at a chain's first point
    left_tried = (everywhere % m != 0) & (m > 1)

    def worth_another_pass(best_theta, best_f, first):
        """Would a pass restart any point profitably? All points at once, values only: a
        neighbour's optimum beats the point's own here, or (after the first pass) a point without
        key lies beside a point with key that was not its warm start."""
        starts = jnp.stack([best_theta[left], best_theta[right]], axis=1)  # (T, 2, d)
        values = jax.vmap(screen_point)(batch, starts)  # (T, 2)
        values = jnp.nan_to_num(values, nan=jnp.inf)
        margin = 1e-6 * (1.0 + jnp.abs(best_f))
        better = jnp.any(values < (best_f - margin)[:, None], axis=1) & (best_f < 0.5 * _INFEASIBLE)
        no_key = best_f >= 0.5 * _INFEASIBLE
        untried = ((best_f[left] < 0.5 * _INFEASIBLE) & ~left_tried) | (best_f[right] < 0.5 * _INFEASIBLE)
        return jnp.any(better | (no_key & ~jnp.all(values >= 0.5 * _INFEASIBLE, axis=1))
                       | (first & no_key & untried))

    def one_pass(carry):
        best_theta, best_f, best_h, n_eval, _, p = carry
        (best_theta, best_f, best_h, n_eval, _, _), _ = jax.lax.scan(
            step, (best_theta, best_f, best_h, n_eval, jnp.asarray(False), p), jnp.arange(m))
        worth = (p < continuation) & worth_another_pass(best_theta, best_f, p == 0) if continuation else False
        return best_theta, best_f, best_h, n_eval, jnp.asarray(worth), p + 1

    def again(carry):
        worth, p = carry[-2:]
        return (p == 0) | worth

    init = (pool[:, 0], jnp.full(total, jnp.inf), jnp.broadcast_to(jnp.eye(d), (total, d, d)),
            jnp.zeros(total, jnp.int32), jnp.asarray(True), jnp.asarray(0, jnp.int32))
    best_theta, _, _, n_eval, _, _ = jax.lax.while_loop(again, one_pass, init)

    def finish(item, theta, evals):
        t = setup(item)
        opt = to_protocol(theta, t["protocol"], space)
        rate = t["analysis"].key_rate(t["link"], opt)
        return Optimum(opt, rate, theta, rate.rate > 0.0, evals)

    out = jax.vmap(finish)(batch, best_theta, n_eval)
    return jax.tree_util.tree_map(lambda x: x[:n_points], out)


def _check(analysis, protocol, space):
    from qmc.validation import validate

    validate(analysis)
    validate(protocol)
    rules = analysis.protocol_checks(protocol) if hasattr(analysis, "protocol_checks") else []
    for rule in rules:  # the reparameterization keeps every rule that holds at the start
        message = rule.error(protocol, "protocol.")
        if message is not None:
            raise ValidationError(message)
    k = int(np.shape(protocol.intensities)[0])
    if space.size(k) == 0:
        raise ValueError("nothing to optimize: the space frees no parameter")


def _pool(protocol, space, n_pool, starts, seed, n_points):
    starts = starting_points(protocol, space, n_pool, seed) if starts is None else starts
    starts = np.asarray(starts, np.float64)
    if starts.ndim == 2:
        starts = np.broadcast_to(starts, (n_points,) + starts.shape)
    k = int(np.shape(protocol.intensities)[0])
    if starts.ndim != 3 or starts.shape[0] != n_points or starts.shape[2] != space.size(k):
        raise ValueError(f"starts: shape {starts.shape} does not match (S, {space.size(k)}) or "
                         f"({n_points}, S, {space.size(k)})")
    return jnp.asarray(starts)


def maximize(
    analysis,
    link,
    protocol,
    space: Space | None = None,
    *,
    n_starts: int = 4,
    n_pool: int = 32,
    starts: np.ndarray | None = None,
    seed: int = 0,
    batched: bool = False,
    validate: bool = True,
    solver: str = "bfgs",
    **bfgs: Any,
) -> Optimum:
    """Maximize ``analysis.key_rate(link, protocol).rate`` over the free protocol parameters.

    Args:
        analysis: any qmc analysis with ``key_rate(link, protocol)`` (asymptotic or finite-key).
        link: a :class:`qmc.Link`; with ``batched=True`` a Link whose every leaf has a leading
            batch axis P (e.g. built with ``jax.vmap``): one optimum per link, in one compiled call.
        protocol: the starting protocol; fixed parameters keep its values. It must satisfy the
            analysis' rules (e.g. key basis Z and mu_3 for Lim), which then hold at every iterate.
        space: what is free (default: :func:`default_space`).
        n_starts: BFGS runs per link, side by side: from the given protocol and from the
            ``n_starts - 1`` best of ``n_pool`` spread-out starts (:func:`starting_points`) by
            loss value, unless ``starts`` ((S, d) or (P, S, d)) is given.
        n_pool: starts screened (values only) for the lanes after the first.
        seed: seed of the spread-out starts.
        validate: check the analysis and the protocol first (concrete values only).
        solver: ``"bfgs"`` (default: :func:`minimize_bfgs`, qmc's dense BFGS) or ``"optax"``
            (:func:`minimize_optax`: ``optax.lbfgs()`` with its zoom line search; same loss,
            reparameterization and starts, slower on a CPU).
        **bfgs: options of the solver: :func:`minimize_bfgs` (``max_iter``, ``gtol``, ``ftol``,
            ``dtol``, ``patience``, ...) or :func:`minimize_optax` (``max_iter``, ``gtol``,
            ``ftol``, ``patience``, ``memory_size``).

    Returns:
        :class:`Optimum` (leaves with a leading axis P when ``batched``).

    Examples:
        >>> opt = maximize(qmc.analysis.FiniteLim2014(block_size=1e9), link, protocol)
        >>> float(opt.rate.rate), opt.parameters()
    """
    space = default_space(analysis, protocol) if space is None else space
    options = _options(bfgs, solver)
    if validate:
        _check(analysis, protocol, space)
    links = link if batched else jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], link)
    n_points = int(jax.tree_util.tree_leaves(links)[0].shape[0])
    pool = _pool(protocol, space, max(int(n_pool), int(n_starts)) if n_starts > 1 else 1, starts, seed, n_points)
    tree = {"link": None, "analysis": analysis, "protocol": protocol}
    lanes = max(int(n_starts), 1)
    if pool.shape[1] < lanes:
        raise ValueError(f"starts: {pool.shape[1]} given, n_starts = {lanes} needs at least as many")
    out = _optimize(tree, links, pool, None, space, options, lanes, 1, 0, solver=solver)
    return out if batched else jax.tree_util.tree_map(lambda x: x[0], out)


def maximize_sweep(
    analysis,
    link,
    protocol,
    points: Mapping[str, Sequence[float]],
    space: Space | None = None,
    *,
    n_starts: int = 2,
    n_pool: int = 32,
    starts: np.ndarray | None = None,
    seed: int = 0,
    chain_length: int | None = None,
    explore_every: int = 8,
    continuation: int = 4,
    validate: bool = True,
    solver: str = "bfgs",
    **bfgs: Any,
) -> Optimum:
    """Optimal protocol parameters at every point of a sweep, in one compiled call.

    Continuation: the points are cut into chains of ``chain_length`` consecutive points; along a
    chain every point starts one BFGS run (lane 0) from the previous point's optimum and
    ``n_starts - 1`` more from spread-out starts that rotate through a pool of ``n_pool``; the
    chains run side by side (vmap). Then up to ``continuation`` passes, alternately backward and
    forward, restart each point from its neighbours' optima wherever that beats its own.

    Args:
        analysis, link, protocol, space, seed, validate: as :func:`maximize`.
        points: ``{path: values}`` with paths into ``{"link": link, "analysis": analysis,
            "protocol": protocol}`` (``"link.channel.length_km"``, ``"analysis.block_size"``, or
            a fixed parameter such as ``"protocol.intensities.2"``) and values of one common
            length P: the sweep is the path through these points in the given order (zipped, not
            a product: use ``qmc.sweep.grid(...).points()`` columns for a product).
        n_starts: BFGS runs per point, side by side (the warm start and ``n_starts - 1`` others).
        n_pool: starts screened by loss value for the exploring lanes (the first is the user's
            protocol, :func:`starting_points`), unless
            ``starts`` ((S, d), or (P, S, d) e.g. the optima of an earlier sweep) is given.
        chain_length: points per chain. None: P / 2 on a CPU (two warm-started chains side by
            side: few evaluations, and a CPU pays for every lane it computes, but two chains cost
            about what one does), 1 on an accelerator (every point at once: one vmapped step costs
            about what one point costs). Lanes run one after the other along chains, side by side
            when chain_length is 1.
        explore_every: along a chain, the spread-out starts run at every ``explore_every``-th
            point only (and at the chain's first): the warm start carries the optimum, the others
            look for a better basin, and the continuation passes spread what they find.
        continuation: at most this many passes of restarts from the neighbours' optima (0: none;
            a single point has none).
        solver, **bfgs: as :func:`maximize` (with ``"optax"`` a warm start carries the optimum
            only, no curvature).

    Returns:
        :class:`Optimum` with leading axis P.

    Examples:
        >>> opt = maximize_sweep(qmc.analysis.FiniteLim2014(block_size=1e9), link, protocol,
        ...                      {"link.channel.length_km": np.linspace(0, 200, 100)})
        >>> opt.rate.rate.shape
        (100,)
    """
    space = default_space(analysis, protocol) if space is None else space
    options = _options(bfgs, solver)
    if validate:
        _check(analysis, protocol, space)
    tree = {"link": link, "analysis": analysis, "protocol": protocol}
    paths = tuple(points)
    for path in paths:
        get_path(tree, path)  # a typo in a path fails here, before compiling
    columns = [np.atleast_1d(np.asarray(points[p], np.float64)) for p in paths]
    if not columns or len({c.shape for c in columns}) != 1 or columns[0].ndim != 1:
        raise ValueError("points: give one 1-d array of values per path, all of the same length")
    grid = np.stack(columns, axis=1)
    n_points = len(grid)
    lanes = max(int(n_starts), 1)
    # one lane never screens the pool: only the user's start is used
    pool = _pool(protocol, space, max(int(n_pool), lanes) if lanes > 1 else 1, starts, seed, n_points)
    if pool.shape[1] < lanes:
        raise ValueError(f"starts: {pool.shape[1]} given, n_starts = {lanes} needs at least as many")
    if chain_length is None:  # CPU: two chains (half the sequential steps, no lockstep cost yet)
        chain_length = -(-n_points // 2) if jax.default_backend() == "cpu" else 1
    m = max(1, min(int(chain_length), n_points))
    continuation = int(continuation) if n_points > 1 else 0  # one point: no neighbours (less to compile)
    return _optimize(tree, jnp.asarray(grid), pool, paths, space, options, lanes, m, continuation,
                     max(int(explore_every), 1), m > 1 and lanes > 1, solver)


# ----------------------------------------------------------------------------------------------
# Checking an optimum with the block engine
# ----------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("n_sessions",))
def check_block_engine(key, analysis, link, protocol, n_sessions: int = 1000):
    """Finite-key sessions at ``protocol`` from the block engine, against the predicted key length.

    The finite-key analyses predict the key length l from *expected* counts of a block. Here
    ``n_sessions`` sessions of the same number of pulses N (the predicted N for the block,
    ``analysis.key_rate(link, protocol).n_pulses``) are drawn by the block engine
    (:func:`qmc.engines.block.sample_sessions`: multinomial counts of the exact engine's
    probabilities), and each session's own counts go through the same analysis
    (``key_rate_from_observations`` with its pulse total). The optimum is confirmed when the median
    session key length agrees with the prediction within the finite-size spread of the sessions,
    half the 16-84 % interquantile range (at least one bit).

    Args:
        key: JAX PRNG key.
        analysis: a finite-key analysis (``block_size``; e.g. :class:`qmc.analysis.FiniteLim2014`).
        link, protocol: the link and the (optimal) protocol.
        n_sessions: sessions drawn (static).

    Returns:
        dict of scalars: ``predicted`` (l at expected counts), ``median``, ``q16``, ``q84`` (of the
        session key lengths, unclipped, bits), ``abort_fraction`` (sessions whose analysis claims
        no key), ``n_pulses`` (N), ``agrees`` (bool) and ``valid`` (False where N is not below
        2**53, the block engine's limit, or the prediction has no key: then nothing is drawn and
        ``agrees`` is False).
    """
    from qmc.engines.observations import Observations
    from qmc.engines.block import sample_sessions

    predicted = analysis.key_rate(link, protocol)
    n = predicted.n_pulses
    valid = jnp.isfinite(n) & (n >= 1.0) & (n < 2.0**53) & (predicted.rate > 0.0)
    tally = sample_sessions(key, link, protocol, jnp.where(valid, jnp.floor(n), 1.0), n_sessions, True)
    obs = tally.observations()

    def session(gain, error_gain, sent, n_pulses):
        return analysis.key_rate_from_observations(Observations(gain, error_gain, sent), protocol, n_pulses=n_pulses)

    out = jax.vmap(session)(obs.gain, obs.error_gain, obs.n_sent, tally.n_pulses.astype(jnp.float64))
    q16, median, q84 = jnp.quantile(out.key_length, jnp.asarray([0.16, 0.5, 0.84]))
    spread = jnp.maximum(0.5 * (q84 - q16), 1.0)
    return {
        "predicted": predicted.key_length, "median": median, "q16": q16, "q84": q84,
        "abort_fraction": jnp.mean(out.reason != 0), "n_pulses": n,
        "agrees": valid & (jnp.abs(median - predicted.key_length) <= spread), "valid": valid,
    }
