"""BBM92 from the two-arm table: gain, QBER, Ma-Fung-Lo's closed forms, the asymptotic key rate,
its maximum over the mean pair number and the maximum distance.

Conventions (as qmc's BB84, docs/conventions.md):

* gain Q_b: probability per pulse, given both parties chose basis b, that both sides click
  (at least one detector each, double clicks included): Ma, Fung, Lo's coincidence Q_lambda;
* QBER E_b: errors over coincidences in basis b, where a double click (on either side) is given
  a uniformly random bit, independent of everything else, so it counts half an error;
* key rate per pulse (Ma, Fung, Lo 2007, after Koashi-Preskill's basis-independent source):
  R = q Q [1 - f H2(E) - H2(E)], q = 1/2 (symmetric bases, both used for key). With per-basis
  values this is computed as (q/2) sum_b Q_b [1 - f H2(E_b) - H2(E_b')] (b' the other basis);
  both bases are equal for this source, so it is q Q [1 - (1 + f) H2(E)]. Not positive: 0.

Ma, Fung, Lo (PRA 76, 012307 (2007)), with Y0A, Y0B the sides' background yields, e0 = 1/2:

    Q_lambda = 1 - (1 - Y0A)/(1 + eta_A lambda)^2 - (1 - Y0B)/(1 + eta_B lambda)^2
                 + (1 - Y0A)(1 - Y0B)/(1 + eta_A lambda + eta_B lambda - eta_A eta_B lambda)^2
    E_lambda Q_lambda = e0 Q_lambda - 2 (e0 - e_d) K,
    K = eta_A eta_B lambda (1 + lambda) / [(1 + eta_A lambda)(1 + eta_B lambda)
                                          (1 + eta_A lambda + eta_B lambda - eta_A eta_B lambda)].

The table reproduces Q_lambda exactly with either click model, and E_lambda Q_lambda exactly with
``click_model="ma2007"``; the physical threshold model has
E Q = MFL + (1 - 2 e_d)(1 - (1 - p_dA)(1 - p_dB)) K (a coincident dark count can turn a
correlated click into a double click). At unit efficiency without dark counts and with e_d = 0 both
give E = lambda / (2 (2 + lambda)): all errors are double clicks (P = (lambda/(1+lambda))^2, both
polarization modes occupied) given random bits, over Q = 1 - 1/(1+lambda)^2.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from qmc.entropy import h2
from qmc.entanglement.two_arm import TwoArmLink

__all__ = [
    "ERROR_WEIGHT", "gain_and_qber", "mfl_gain", "mfl_error_gain", "mfl_k",
    "key_rate_from_table", "bbm92_key_rate", "optimal_key_rate", "maximum_distance_km",
]

# error weight of a coincidence cell (Alice outcome, Bob outcome), outcomes 0 none, 1 bit 0,
# 2 bit 1, 3 double click (random bit: half an error); cells without coincidence weigh 0.
ERROR_WEIGHT = np.array([
    [0.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.5],
    [0.0, 1.0, 0.0, 0.5],
    [0.0, 0.5, 0.5, 0.5],
])
COINCIDENCE = np.array([[0.0] * 4] + [[0.0, 1.0, 1.0, 1.0]] * 3)


def gain_and_qber(table):
    """(Q, E) per matched basis, shape (2,) each, from a (2, 2, 4, 4) table (module docstring).

    E is 1/2 where Q = 0 (no coincidence: no information)."""
    matched = jnp.stack([table[0, 0], table[1, 1]])
    q = jnp.sum(matched * COINCIDENCE[None], axis=(-2, -1))
    eq = jnp.sum(matched * ERROR_WEIGHT[None], axis=(-2, -1))
    e = jnp.where(q > 0, eq / jnp.where(q > 0, q, 1.0), 0.5)
    return q, e


def mfl_k(lam, eta_a, eta_b):
    """K of the module docstring: half the photon correlation <a b> of the two sides."""
    s = 1.0 + eta_a * lam + eta_b * lam - eta_a * eta_b * lam
    return eta_a * eta_b * lam * (1.0 + lam) / ((1.0 + eta_a * lam) * (1.0 + eta_b * lam) * s)


def mfl_gain(lam, eta_a, eta_b, y0a, y0b):
    """Q_lambda of Ma, Fung, Lo (2007) (module docstring)."""
    s = 1.0 + eta_a * lam + eta_b * lam - eta_a * eta_b * lam
    return (1.0 - (1.0 - y0a) / (1.0 + eta_a * lam) ** 2 - (1.0 - y0b) / (1.0 + eta_b * lam) ** 2
            + (1.0 - y0a) * (1.0 - y0b) / s ** 2)


def mfl_error_gain(lam, eta_a, eta_b, y0a, y0b, e_d, e0=0.5):
    """E_lambda Q_lambda of Ma, Fung, Lo (2007) (module docstring)."""
    return e0 * mfl_gain(lam, eta_a, eta_b, y0a, y0b) - 2.0 * (e0 - e_d) * mfl_k(lam, eta_a, eta_b)


def key_rate_from_table(table, f_ec=1.16, q=0.5):
    """Asymptotic BBM92 key rate per pulse from a (2, 2, 4, 4) table (module docstring), >= 0."""
    gain, qber = gain_and_qber(table)
    h = h2(qber)
    per_basis = gain * (1.0 - f_ec * h - h[::-1])
    return jnp.maximum(q * jnp.mean(per_basis), 0.0)


def bbm92_key_rate(gain, qber, f_ec=1.16, q=0.5):
    """R = q Q [1 - f H2(E) - H2(E)] (Ma, Fung, Lo 2007), 0 where not positive."""
    h = h2(qber)
    return jnp.maximum(q * gain * (1.0 - f_ec * h - h), 0.0)


def _rate_at(link: TwoArmLink, log10_mu, f_ec, q):
    source = dataclasses.replace(link.source, mean_pair_number=10.0 ** log10_mu)
    return key_rate_from_table(dataclasses.replace(link, source=source).table(), f_ec, q)


def optimal_key_rate(link: TwoArmLink, f_ec=1.16, q=0.5, log10_mu_range=(-5.0, 0.5), points=56,
                     refinements=3):
    """(R*, mu*): the key rate maximized over the source's mean pair number, for one link.

    A grid of ``points`` values of log10 mu over ``log10_mu_range``, then ``refinements`` finer
    grids of 9 points around the best (each spanning two cells of the previous one, so the spacing
    shrinks fourfold per refinement: 0.1 / 4^3 = 1.6e-3 in log10 mu by default); the result is
    within half that spacing of the maximizer of this unimodal rate, and the rate within a few
    1e-6 (relative) of its maximum. Pure jnp: jit it, and
    vmap over links (e.g. ``jax.vmap(lambda L: optimal_key_rate(replace(link, length_km=L)))``).
    Where no mu gives a positive rate, R* = 0 and mu* is the grid's best (meaningless) point.
    """
    rate = jax.vmap(lambda x: _rate_at(link, x, f_ec, q))
    grid = jnp.linspace(log10_mu_range[0], log10_mu_range[1], points)
    step = grid[1] - grid[0]
    best = grid[jnp.argmax(rate(grid))]
    for _ in range(refinements):
        grid = best + jnp.linspace(-step, step, 9)
        step = grid[1] - grid[0]
        best = grid[jnp.argmax(rate(grid))]
    return _rate_at(link, best, f_ec, q), 10.0 ** best


def maximum_distance_km(link: TwoArmLink, f_ec=1.16, q=0.5, hi_km=400.0, tol_km=0.05):
    """The longest total length with a positive optimal key rate (bisection on the host)."""
    rate = jax.jit(lambda length: optimal_key_rate(dataclasses.replace(link, length_km=length), f_ec, q)[0])
    lo, hi = 0.0, float(hi_km)
    if float(rate(lo)) <= 0.0:
        return 0.0
    if float(rate(hi)) > 0.0:
        return hi
    while hi - lo > tol_km:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if float(rate(mid)) > 0.0 else (lo, mid)
    return 0.5 * (lo + hi)
