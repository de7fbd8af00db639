"""CHSH: the S value from coincidence counts, its standard error, and what the pair source gives.

Counts. In each of the four CHSH setting pairs (a, b), (a, b'), (a', b), (a', b') the
coincidences are counted by bits: N[setting, Alice bit, Bob bit] (a double click given a uniformly
random bit, as in the QBER). Per setting

    E = (N_same - N_diff) / N_total,   S = |E(a, b) - E(a, b') + E(a', b) + E(a', b')|.

Standard error: given N_total, N_same is binomial, so Var(E) = (1 - E^2) / N_total; the four
settings are measured on disjoint pulses, so sigma_S = sqrt(sum_i (1 - E_i^2) / N_i) (delta method,
conditional on the coincidence totals). The classical (local hidden variable) limit is S = 2.

Expectation. For a state whose correlation at analyser angles (alpha, beta) is V cos 2(alpha - beta)
the CHSH angles a = 0, a' = pi/4, b = pi/8, b' = 3 pi/8 give S = 2 sqrt(2) V.

Visibility of the pair source (:func:`visibility`): V = 1 - 2 E, E the matched-basis QBER of the
two-arm table (:mod:`qmc.entanglement.bbm92`), i.e. the correlation at equal angles, with
multi-pair emission, dark counts and the pair error included. The two-arm model also gives the
correlation at any angles (:func:`model_s` evaluates it at the CHSH angles, from the same closed
form in a rotated basis): it is V cos 2 Delta times
(D0^2 - kappa D0) / (D0^2 - kappa D0 + kappa^2 sin^2(2 Delta) / 4), with
kappa = lambda eta_A eta_B (1 + lambda) and D0 = 1 + lambda (eta_A + eta_B) + lambda^2 eta_A eta_B
(thermal statistics), so S = 2 sqrt(2) V up to a relative kappa^2 / (8 D0 (D0 - kappa)): at most
2 % at unit efficiency and lambda = 0.5, below 1e-8 for lossy arms. The multi-pair noise is not
quite white: its correlation is not exactly proportional to cos 2 Delta. V from the QBER is the
number an experiment quotes (its matched-basis fringe visibility); :func:`model_s` is the exact
prediction of S.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from qmc.entanglement.two_arm import TwoArmLink, angle_table
from qmc.entanglement.bbm92 import gain_and_qber

__all__ = [
    "CHSH_ANGLES", "CHSH_SIGNS", "CLASSICAL_LIMIT", "correlators_from_counts", "chsh_from_counts",
    "expected_s", "visibility", "bit_probabilities", "chsh_probabilities", "model_s",
    "sample_chsh_counts",
]

# (alpha, beta) of the settings (a, b), (a, b'), (a', b), (a', b'), polarization angles in rad
CHSH_ANGLES = ((0.0, math.pi / 8.0), (0.0, 3.0 * math.pi / 8.0),
               (math.pi / 4.0, math.pi / 8.0), (math.pi / 4.0, 3.0 * math.pi / 8.0))
CHSH_SIGNS = np.array([1.0, -1.0, 1.0, 1.0])
CLASSICAL_LIMIT = 2.0


def correlators_from_counts(counts):
    """(E, N): per setting, E = (N_same - N_diff) / N and N, from counts (4, 2, 2). E = 0 where N = 0."""
    c = jnp.asarray(counts, dtype=jnp.float64)
    same = c[..., 0, 0] + c[..., 1, 1]
    diff = c[..., 0, 1] + c[..., 1, 0]
    total = same + diff
    e = jnp.where(total > 0, (same - diff) / jnp.where(total > 0, total, 1.0), 0.0)
    return e, total


def chsh_from_counts(counts):
    """(S, standard error of S) from coincidence counts (4, 2, 2) (module docstring)."""
    e, n = correlators_from_counts(counts)
    s = jnp.abs(jnp.sum(jnp.asarray(CHSH_SIGNS) * e, axis=-1))
    var = jnp.where(n > 0, (1.0 - e ** 2) / jnp.where(n > 0, n, 1.0), 0.0)
    return s, jnp.sqrt(jnp.sum(var, axis=-1))


def expected_s(visibility_):
    """S = 2 sqrt(2) V: the CHSH value of a state with correlation V cos 2 Delta."""
    return 2.0 * math.sqrt(2.0) * jnp.asarray(visibility_)


def visibility(link: TwoArmLink):
    """V = 1 - 2 E with E the Z-basis QBER of the link's two-arm table (module docstring)."""
    _, e = gain_and_qber(link.table())
    return 1.0 - 2.0 * e[0]


def bit_probabilities(table):
    """(2, 2): P(coincidence with Alice bit i, Bob bit j) per pulse from a (4, 4) outcome table,
    a double click given a uniformly random bit."""
    t = jnp.asarray(table)
    # outcome -> bit: 1 -> (1, 0), 2 -> (0, 1), 3 (double) -> (1/2, 1/2); no click -> none
    m = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    return m.T @ t @ m


def chsh_probabilities(link: TwoArmLink):
    """(4, 2, 2): bit probabilities per pulse in the four CHSH settings, from the two-arm model
    with the analysers at :data:`CHSH_ANGLES` (the link's :meth:`TwoArmLink.detection`: its
    coincidence window included)."""
    eta_a, eta_b, p_dark_a, p_dark_b = link.detection()
    src = link.source
    out = []
    for alpha, beta in CHSH_ANGLES:
        t = angle_table(src.pair_lambda, eta_a, eta_b, p_dark_a, p_dark_b, link.pair_error(),
                        alpha, beta, src.statistics, link.click_model)
        out.append(bit_probabilities(t))
    return jnp.stack(out)


def model_s(link: TwoArmLink):
    """S predicted by the two-arm model at the CHSH angles (exact for the model)."""
    p = chsh_probabilities(link)
    e = (p[:, 0, 0] + p[:, 1, 1] - p[:, 0, 1] - p[:, 1, 0]) / jnp.sum(p, axis=(1, 2))
    return jnp.abs(jnp.sum(jnp.asarray(CHSH_SIGNS) * e))


def sample_chsh_counts(key, link: TwoArmLink, pulses_per_setting):
    """(4, 2, 2) int64 coincidence counts: ``pulses_per_setting`` pulses in each CHSH setting,
    drawn as one multinomial per setting over (no coincidence, the four bit pairs)."""
    p = chsh_probabilities(link).reshape(4, 4)
    p = jnp.concatenate([jnp.clip(1.0 - jnp.sum(p, axis=1, keepdims=True), 0.0, 1.0), p], axis=1)
    n = jnp.full((4,), jnp.asarray(pulses_per_setting, dtype=jnp.float64))
    counts = jax.random.multinomial(key, n, p, dtype=jnp.float64)
    return counts[:, 1:].astype(jnp.int64).reshape(4, 2, 2)
