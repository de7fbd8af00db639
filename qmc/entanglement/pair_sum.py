"""The two-arm outcome table by summing over pair numbers: an independent check (numpy, host only).

A different computation of what :func:`qmc.entanglement.two_arm.outcome_table` gives in closed
form, used by the tests:

* thermal: the Phi+ two-mode squeezed state is sum over (n_H, n_V) of independent thermal
  amplitudes p(n) = lambda^n / (1 + lambda)^(n + 1) with n_H photons in H and n_V in V on *both*
  sides. The state is invariant under the same real rotation of both analysers, so Alice's
  analyser is turned to H/V and Bob's to the relative angle. Alice measures photon numbers in H/V,
  which leaves Bob's modes in the Fock state |n_H, n_V>; its photons are lost binomially
  (eta_B, the same on both modes, so before the analyser), and the m_H, m_V survivors leave Bob's
  polarizing beam splitter with the two-mode Fock amplitudes (two-photon interference included):
  <k, m - k| U |m_H, m_V>, from (c x - s y)^m_H (s x + c y)^m_V. Alice's detector j is reached
  with probability 1 - (1 - eta_A)^{n_j}.
* poisson: Poisson(mu) pairs in distinct modes; one pair lands on (Alice j, Bob k) with
  probability (u_j . v_k)^2 / 2, so the four photon counts are independent Poisson variables.

The sums run to ``n_max`` pairs per mode (thermal) or per (j, k) class (poisson); the
probability left out is returned with the table. Dark counts and the pair error e are applied
as in the closed form's model (a detector reached by a photon clicks; otherwise it clicks with
p_dark; with probability e Bob's two outcomes are exchanged), written out again here.
"""

from __future__ import annotations

import math

import numpy as np

_gammaln = np.vectorize(math.lgamma, otypes=[float])

__all__ = ["outcome_table_by_pair_number", "angle_table_by_pair_number"]

_ANGLES = (0.0, math.pi / 4.0)


def _reach(n, eta):
    """P(at least one of n photons survives efficiency eta), without cancellation."""
    return -np.expm1(np.asarray(n, dtype=float) * np.log1p(-eta)) if eta < 1.0 else (np.asarray(n) > 0) * 1.0


def _side_patterns(p0, p1):
    """(..., 4): P(pattern none / 0 only / 1 only / both) from independent reach probabilities."""
    return np.stack([(1 - p0) * (1 - p1), p0 * (1 - p1), (1 - p0) * p1, p0 * p1], axis=-1)


def _bs_distribution(n_max, delta):
    """R[mH, mV, k]: P(k photons at Bob's detector 0 | Fock state |mH, mV> in H/V), analyser at
    delta relative to H (detector 0 on (cos, sin), detector 1 on (-sin, cos))."""
    c, s = math.cos(delta), math.sin(delta)
    out = np.zeros((n_max + 1, n_max + 1, 2 * n_max + 1))
    for mh in range(n_max + 1):
        for mv in range(n_max + 1):
            m = mh + mv
            for k in range(m + 1):
                # coefficient of x^k y^(m-k) in (c x - s y)^mh (s x + c y)^mv
                amp = 0.0
                for j in range(max(0, k - mv), min(mh, k) + 1):
                    amp += (math.comb(mh, j) * c ** j * (-s) ** (mh - j)
                            * math.comb(mv, k - j) * s ** (k - j) * c ** (mv - k + j))
                log_norm = 0.5 * (math.lgamma(k + 1) + math.lgamma(m - k + 1)
                                  - math.lgamma(mh + 1) - math.lgamma(mv + 1))
                out[mh, mv, k] = amp * amp * math.exp(2.0 * log_norm)
    return out


def _binomial(n_max, eta):
    """B[n, m] = P(m of n photons survive)."""
    n = np.arange(n_max + 1)[:, None]
    m = np.arange(n_max + 1)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = (_gammaln(n + 1) - _gammaln(m + 1) - _gammaln(np.maximum(n - m, 0) + 1)
                + np.where(m > 0, m * np.log(eta) if eta > 0 else -np.inf, 0.0)
                + np.where(n - m > 0, (n - m) * np.log1p(-eta) if eta < 1 else -np.inf, 0.0))
    return np.where(m <= n, np.exp(logp), 0.0)


def _thermal_presence(lam, eta_a, eta_b, delta, n_max):
    n = np.arange(n_max + 1)
    p = np.exp(n * np.log(lam / (1 + lam)) - np.log1p(lam)) if lam > 0 else (n == 0) * 1.0
    left_out = 1.0 - p.sum() ** 2
    # Alice: analyser on H/V, detector 0 sees the n_H photons, detector 1 the n_V photons
    ra = _reach(n, eta_a)
    alice = _side_patterns(ra[:, None], ra[None, :])                  # (nH, nV, 4)
    # Bob: survivors (mH, mV), then the beam splitter at the relative angle
    r = _bs_distribution(n_max, delta)                                 # (mH, mV, k)
    m = n[:, None] + n[None, :]
    k = np.arange(2 * n_max + 1)
    none = (m[..., None] == 0) & (k == 0)
    only0 = (m[..., None] > 0) & (k == m[..., None])
    only1 = (m[..., None] > 0) & (k == 0)
    both = (k > 0) & (k < m[..., None])
    bob_given_m = np.stack([(r * mask).sum(-1) for mask in (none, only0, only1, both)], axis=-1)
    b = _binomial(n_max, eta_b)                                        # (n, m)
    bob = np.einsum("hx,vy,xyq->hvq", b, b, bob_given_m)               # (nH, nV, 4)
    w = p[:, None] * p[None, :]
    return np.einsum("hv,hvp,hvq->pq", w, alice, bob), left_out


def _poisson_presence(mu, eta_a, eta_b, delta, n_max):
    # classes (Alice j, Bob k): probability (u_j . v_k)^2 / 2 per pair
    c2, s2 = math.cos(delta) ** 2, math.sin(delta) ** 2
    means = mu * np.array([[c2, s2], [s2, c2]]) / 2.0
    n = np.arange(n_max + 1)
    pmf = [[np.exp(n * np.log(x) - x - _gammaln(n + 1)) if x > 0 else (n == 0) * 1.0 for x in row]
           for row in means]
    left_out = 1.0 - np.prod([[q.sum() for q in row] for row in pmf])
    grid = np.meshgrid(n, n, n, n, indexing="ij")                      # n00, n01, n10, n11
    weight = (pmf[0][0][:, None, None, None] * pmf[0][1][None, :, None, None]
              * pmf[1][0][None, None, :, None] * pmf[1][1][None, None, None, :])
    a0, a1 = _reach(grid[0] + grid[1], eta_a), _reach(grid[2] + grid[3], eta_a)
    b0, b1 = _reach(grid[0] + grid[2], eta_b), _reach(grid[1] + grid[3], eta_b)
    alice, bob = _side_patterns(a0, a1), _side_patterns(b0, b1)
    return np.einsum("abcd,abcdp,abcdq->pq", weight, alice, bob), left_out


def _outcomes_given_pattern(p_dark):
    """(4, 4) per side: a detector reached by a photon clicks, any other with p_dark."""
    out = np.zeros((4, 4))
    for pattern, (r0, r1) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
        c0 = 1.0 if r0 else p_dark
        c1 = 1.0 if r1 else p_dark
        out[pattern] = [(1 - c0) * (1 - c1), c0 * (1 - c1), (1 - c0) * c1, c0 * c1]
    return out


def angle_table_by_pair_number(mean_pair_number, eta_a, eta_b, p_dark_a, p_dark_b, error,
                               theta_a, theta_b, statistics="thermal", n_max=16):
    """(table (4, 4), probability left out) at analyser angles theta_a, theta_b (threshold clicks)."""
    delta = float(theta_b) - float(theta_a)
    if statistics == "thermal":
        pres, left = _thermal_presence(float(mean_pair_number) / 2.0, float(eta_a), float(eta_b), delta, n_max)
    elif statistics == "poisson":
        pres, left = _poisson_presence(float(mean_pair_number), float(eta_a), float(eta_b), delta, n_max)
    else:
        raise ValueError(statistics)
    # rotating Alice's analyser back to H/V relabels nothing: detector 0 stays on u, 1 on u_perp
    t = _outcomes_given_pattern(float(p_dark_a)).T @ pres @ _outcomes_given_pattern(float(p_dark_b))
    flipped = t[:, [0, 2, 1, 3]]
    return (1.0 - error) * t + error * flipped, left


def outcome_table_by_pair_number(mean_pair_number, eta_a, eta_b, p_dark_a, p_dark_b, error,
                                 statistics="thermal", n_max=16):
    """(table (2, 2, 4, 4) in the layout of ``outcome_table``, largest probability left out)."""
    table = np.zeros((2, 2, 4, 4))
    worst = 0.0
    for i, ta in enumerate(_ANGLES):
        for j, tb in enumerate(_ANGLES):
            table[i, j], left = angle_table_by_pair_number(mean_pair_number, eta_a, eta_b, p_dark_a,
                                                           p_dark_b, error, ta, tb, statistics, n_max)
            worst = max(worst, left)
    return table, worst
