"""Exact results for repeater chains: what the Monte Carlo is tested against (numpy, host side).

- :func:`two_link_attempts`: two links in parallel, perfect memories and swap: the mean of the
  larger of two geometric numbers, (3 - 2p) / (p (2 - p)); with a swap that succeeds with
  probability q (both links regenerate after a failure) the chain renews, so the mean is that / q.
- :func:`n_link_attempts`: the mean of the largest of N geometric numbers,
  sum_{k=1..N} (-1)^(k+1) C(N, k) / (1 - (1-p)^k) (inclusion-exclusion on P(max > t)).
- :func:`two_link_fidelity`: two Werner links of fidelity F and depolarizing / dephasing memories:
  the earlier pair's two qubits wait |D| rounds, D the difference of the two geometric numbers,
  P(|D| = 0) = p / (2 - p), P(|D| = k) = 2 p (1-p)^k / (2 - p); with x the decay of a correlation
  per round of that wait, E[x^|D|] = p / (2 - p) (1 + 2 x (1-p) / (1 - x (1-p))).
- :func:`stored_pair_fidelity`: one Werner pair of fidelity F, both qubits stored for t.
- :func:`two_link_cutoff_attempts`: two links with a cutoff of m rounds, exactly, from the
  absorbing Markov chain of the age of the stored pair.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["two_link_attempts", "n_link_attempts", "two_link_fidelity", "stored_pair_fidelity",
           "two_link_cutoff_attempts", "werner_chain_fidelity"]


def two_link_attempts(p: float, q: float = 1.0) -> float:
    return (3.0 - 2.0 * p) / (p * (2.0 - p)) / q


def n_link_attempts(p: float, n: int) -> float:
    return sum((-1) ** (k + 1) * math.comb(n, k) / (1.0 - (1.0 - p) ** k) for k in range(1, n + 1))


def werner_chain_fidelity(f: float, n: int) -> float:
    return 0.25 + 0.75 * ((4.0 * f - 1.0) / 3.0) ** n


def stored_pair_fidelity(f: float, t: float, t_dep: float | None = None, t_deph: float | None = None) -> float:
    """Fidelity of a Werner pair of fidelity ``f`` after both its qubits waited ``t`` seconds."""
    w = (4.0 * f - 1.0) / 3.0
    dep = 1.0 if t_dep is None else math.exp(-2.0 * t / t_dep)
    deph = 1.0 if t_deph is None else math.exp(-2.0 * t / t_deph)
    return 0.25 * (1.0 + w * dep * (1.0 + 2.0 * deph))


def _mean_power_of_gap(p: float, x: float) -> float:
    return p / (2.0 - p) * (1.0 + 2.0 * x * (1.0 - p) / (1.0 - x * (1.0 - p)))


def two_link_fidelity(p: float, f: float, tau: float, t_dep: float | None = None,
                      t_deph: float | None = None) -> float:
    """Mean fidelity of the pair two Werner links deliver (perfect swap, no cutoff)."""
    w2 = ((4.0 * f - 1.0) / 3.0) ** 2
    x_dep = 1.0 if t_dep is None else math.exp(-2.0 * tau / t_dep)
    x_deph = 1.0 if t_deph is None else math.exp(-2.0 * tau / t_deph)
    cz = w2 * _mean_power_of_gap(p, x_dep)
    cx = w2 * _mean_power_of_gap(p, x_dep * x_deph)
    return 0.25 * (1.0 + cz + 2.0 * cx)


def two_link_cutoff_attempts(p: float, m: int) -> float:
    """Mean rounds for two links when a stored pair older than ``m`` rounds is discarded.

    States: 0 (no pair stored) and a = 0..m (one pair stored, a rounds old). Per round from 0:
    both succeed (p^2, done), one (2p(1-p), to age 0), none (to 0). From age a, the other link
    succeeds with p: done if a + 1 <= m, else the old pair is discarded and the new one is stored
    (age 0); it fails with 1 - p: to age a + 1, or to 0 when a + 1 > m."""
    n = m + 2  # index 0: empty; 1 + a: age a
    a_mat = np.eye(n)
    rhs = np.ones(n)
    a_mat[0, 0] -= (1 - p) ** 2
    a_mat[0, 1] -= 2 * p * (1 - p)
    for age in range(m + 1):
        i = 1 + age
        if age + 1 > m:
            a_mat[i, 1] -= p
            a_mat[i, 0] -= 1 - p
        else:
            a_mat[i, 1 + age + 1] -= 1 - p
    return float(np.linalg.solve(a_mat, rhs)[0])
