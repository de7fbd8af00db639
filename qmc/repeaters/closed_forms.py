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
- :func:`purified_link`: one elementary link that purifies two pairs made in parallel (one
  purification round): trials of max(G1, G2) rounds, the earlier pair decayed over the gap
  D = |G1 - G2| (its law above), success with N(D). The trials until a success form a stopping
  time that does not look ahead, so by Wald's identity the mean rounds are E[max] / P_s with
  P_s = sum_d P(D = d) N(d) and E[max] = (3 - 2p) / (p (2 - p)); the delivered pair's mean
  fidelity is sum_d P(D = d) N(d) F'(d) / P_s.
- :func:`pumped_link`: the same with perfect memories and k rounds (k - 1 fresh pairs pumped into
  the kept one, G rounds each): deterministic N_1..N_k and output; the mean rounds E solve the
  renewal equations E = E[max] + (1 - N_1) E + N_1 S_1, S_j = 1/p + (1 - N_(j+1)) E + N_(j+1) S_(j+1),
  S_k = 0.
"""

from __future__ import annotations

import math

import numpy as np

from qmc.repeaters import purification, states

__all__ = ["two_link_attempts", "n_link_attempts", "two_link_fidelity", "stored_pair_fidelity",
           "two_link_cutoff_attempts", "werner_chain_fidelity", "purified_link", "pumped_link"]


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


def _gap_law(p: float) -> tuple[np.ndarray, np.ndarray]:
    """(d, P(|G1 - G2| = d)) for two geometric numbers, d up to where the tail is below 1e-18."""
    d_max = math.ceil(math.log(1e-18) / math.log1p(-p)) if p < 1.0 else 0
    d = np.arange(d_max + 1)
    prob = np.where(d == 0, p / (2.0 - p), 2.0 * p * (1.0 - p) ** d / (2.0 - p))
    return d, prob


def purified_link(p: float, f: float, method: str, x_dep: float = 1.0, x_deph: float = 1.0) -> tuple[float, float]:
    """(mean rounds, mean fidelity) of one link purifying two Werner pairs of fidelity ``f`` made in
    parallel; ``x_dep``, ``x_deph``: decay factors of a stored pair per round (both qubits)."""
    d, prob = _gap_law(p)
    c = np.asarray(states.werner(f))
    stored = np.asarray(states.decay(np.broadcast_to(c, (d.size, 3)), x_dep**d, x_deph**d))
    out, n = (np.asarray(x) for x in purification.purify(stored, np.broadcast_to(c, stored.shape), method))
    p_success = float(np.sum(prob * n))
    mean_fidelity = float(np.sum(prob * n * np.asarray(states.fidelity(out)))) / p_success
    return (3.0 - 2.0 * p) / (p * (2.0 - p)) / p_success, mean_fidelity


def pumped_link(p: float, f: float, method: str, rounds: int) -> tuple[float, np.ndarray]:
    """(mean rounds, correlations of the delivered pair) of one link with perfect memories that
    purifies two Werner pairs of fidelity ``f`` and pumps ``rounds`` - 1 fresh ones into the result."""
    c_raw = np.asarray(states.werner(f))
    c, probs = c_raw, []
    for _ in range(rounds):
        c, n = (np.asarray(x) for x in purification.purify(c, c_raw, method))
        probs.append(float(n))
    # unknowns x = (E, S_1, ..., S_{k-1}); S_k = 0
    k = rounds
    a = np.zeros((k, k))
    rhs = np.zeros(k)
    a[0, 0] = probs[0]  # E - (1 - N_1) E - N_1 S_1 = E[max]
    if k > 1:
        a[0, 1] = -probs[0]
    rhs[0] = (3.0 - 2.0 * p) / (p * (2.0 - p))
    for j in range(1, k):  # S_j - (1 - N_{j+1}) E - N_{j+1} S_{j+1} = 1 / p
        a[j, j] = 1.0
        a[j, 0] = -(1.0 - probs[j])
        if j + 1 < k:
            a[j, j + 1] = -probs[j]
        rhs[j] = 1.0 / p
    return float(np.linalg.solve(a, rhs)[0]), c
