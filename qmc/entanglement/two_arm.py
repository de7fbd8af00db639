"""The joint outcome table of Alice's and Bob's receivers for a pulsed pair source (closed form).

Model
-----
The source emits, per pulse, the Phi+ two-mode squeezed state (:mod:`qmc.entanglement.spdc`): two
independent two-mode squeezed vacua with thermal photon numbers of mean lambda = mu / 2, one on
(H_A, H_B), one on (V_A, V_B); or, for "poisson" statistics, Poisson(mu) Bell pairs in distinct
modes. Each receiver has a polarization analyser at angle theta (basis Z: theta = 0, detector 0
on H, detector 1 on V; basis X: theta = pi/4, detector 0 on D, detector 1 on A) and two threshold
detectors. Arm A (source -> Alice's detectors) transmits each photon with eta_A (channel x
detector efficiency), arm B with eta_B; losses are independent per photon (beam splitters).

No-photon probabilities. Let P_S be the projector onto the polarization modes of a subset S of a
receiver's detectors (0, u u^T, u_perp u_perp^T or the identity, with u = (cos theta, sin theta)),
A = I - eta_A P_{S_A} and B = I - eta_B P_{S_B}. The probability that no photon is detected in
any detector of S_A (Alice) and S_B (Bob) is

    thermal:  N(S_A, S_B) = 1 / det(I + lambda (I - A B))
    poisson:  N(S_A, S_B) = exp(-lambda tr(I - A B)).

Derivation (thermal): the state is (1 - tau^2) exp(tau a^dag . b^dag)|0>, tau^2 = lambda/(1+lambda);
the no-detection operator s^{n_S} with s = 1 - eta is exp(ln s a^dag P a), which maps a^dag to
A a^dag; the overlap of two such Gaussian vectors is 1 / det(I - tau^2 A B), times
(1 - tau^2)^2 = (1 + lambda)^-2. For one mode pair it is the generating function
E[s^n t^n] = 1 / (1 + lambda (1 - s t)) of a thermal number, which gives Ma, Fung, Lo's
(1 + eta lambda)^-2 and (1 + eta_A lambda + eta_B lambda - eta_A eta_B lambda)^-2. Poisson: each
of Poisson(mu) pairs is missed with <Phi+|A x B|Phi+> = tr(A B) / 2. The same formula at any
analyser angles gives the rotated bases of the CHSH test (:mod:`qmc.entanglement.chsh`), with
the two-photon interference of multi-pair emission included exactly.

Inclusion-exclusion over the 16 pairs (S_A, S_B) gives the probability of each pattern of
detectors *reached by a photon* (per side: none, 0 only, 1 only, both); dark counts then act per
detector, independently (p_dark per detector per gate, Y0 = 1 - (1 - p_dark)^2 per side):

* ``click_model="threshold"`` (physical): a detector clicks if a photon reaches it or it has a
  dark count, so a photon on one detector and a dark count on the other is a double click;
* ``click_model="ma2007"`` (Ma, Fung, Lo's gain and error): a side's dark counts only matter when
  no photon reaches it (a photon's click wins over a coincident dark count). Both models have the
  same gain; their error rates differ by (1 - 2 e)(1 - (1 - p_dA)(1 - p_dB)) K (see bbm92.py),
  a relative 2 p_dark.

Coincidence window (:mod:`qmc.entanglement.window`, the source's ``coincidence_window_ns``): the
table is the same function of (eta_A, eta_B, p_dark_A, p_dark_B) with Bob's arm times the jitter
capture erf(w / (2 sqrt(2) sigma)) and, for free-running detectors of dark-count rate R,
p_dark = 1 - exp(-R w) per window (:meth:`TwoArmLink.detection`, the one place that applies it).

Misalignment. e_d is the probability that a detected pair's bits disagree in matched bases (Ma,
Fung, Lo's intrinsic error of the pair, one number for the link; :meth:`PairSource.pair_error`
folds in the source's visibility). It enters as a flip of Bob's analyser for the whole pulse:
with probability e the outcomes of Bob's two detectors are exchanged (every pair of the pulse
flipped together). So the table is (1 - e) T + e T[swap Bob's bits], every correlator is scaled
by 1 - 2 e, single pairs see a Werner state of visibility 1 - 2 e, and the table reproduces Ma,
Fung, Lo's E_lambda Q_lambda exactly (a flip per pair would not). In mismatched bases the flip
changes nothing: given both sides' click patterns the two bits are uniform and independent
(the H <-> V and D <-> A symmetries of the state), the patterns themselves being correlated
through the pair number.

Outcome order per side: 0 no click, 1 click with bit 0 (detector 0 only), 2 bit 1 (detector 1
only), 3 double click (as qmc's BB84 tables). Numerics: inclusion-exclusion cancels; it runs on N - 1
(computed without cancellation), so a cell's absolute error is about 1e-16 times the probability
that a photon is detected at all, not 1e-16.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from qmc._pytree import pytree_dataclass, static
from qmc.channels.base import db_to_transmittance
from qmc.entanglement.spdc import STATISTICS, PairSource
from qmc.entanglement.window import window_capture, window_dark_probability
from qmc.validation import Range, Rule

__all__ = [
    "CLICK_MODELS", "BASIS_ANGLES", "no_photon_table", "presence_table", "dark_matrix",
    "angle_table", "outcome_table", "TwoArmLink", "swap_bob",
]

CLICK_MODELS = ("threshold", "ma2007")
BASIS_ANGLES = (0.0, math.pi / 4.0)  # Z (H/V), X (D/A): analyser angles in polarization space

# Per side, W[C, S]: P(photons reach exactly the detectors C) = sum_S W[C, S] N(S), S the subset
# with no photon; subsets coded 0 = {}, 1 = {det 0}, 2 = {det 1}, 3 = {both}.
_MOBIUS = np.array([
    [0, 0, 0, 1],     # none reached: no photon in {0, 1}
    [0, 0, 1, -1],    # det 0 only: none in {1}, minus none in {0, 1}
    [0, 1, 0, -1],    # det 1 only
    [1, -1, -1, 1],   # both
], dtype=np.float64)
_SUBSET = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float64)  # detector 0, 1 in S
_SWAP = np.array([0, 2, 1, 3])  # exchange bit 0 and bit 1 (no click and double click stay)


def _projectors(theta):
    """(4, 2, 2): the projectors P_S onto the modes of the four subsets S of one receiver's
    detectors, analyser at theta (detector 0 on u = (cos, sin), detector 1 on (-sin, cos))."""
    theta = jnp.asarray(theta, dtype=jnp.float64)
    c, s = jnp.cos(theta), jnp.sin(theta)
    u = jnp.stack([c, s])
    v = jnp.stack([-s, c])
    sub = jnp.asarray(_SUBSET)
    return sub[:, 0, None, None] * jnp.outer(u, u)[None] + sub[:, 1, None, None] * jnp.outer(v, v)[None]


def _no_photon_minus_one(lam, eta_a, eta_b, theta_a, theta_b, statistics):
    """(4, 4): N(S_A, S_B) - 1, without cancellation: with M = I - A B = eta_A P_A + eta_B P_B
    - eta_A eta_B P_A P_B, thermal N - 1 = -(D - 1) / D, D - 1 = lambda tr M + lambda^2 det M;
    poisson N - 1 = expm1(-lambda tr M)."""
    lam = jnp.asarray(lam, dtype=jnp.float64)
    eta_a = jnp.asarray(eta_a, dtype=jnp.float64)
    eta_b = jnp.asarray(eta_b, dtype=jnp.float64)
    pa = _projectors(theta_a)[:, None]                   # (4, 1, 2, 2)
    pb = _projectors(theta_b)[None, :]                   # (1, 4, 2, 2)
    m = eta_a * pa + eta_b * pb - eta_a * eta_b * jnp.einsum("...ab,...bc->...ac", pa, pb)
    tr = m[..., 0, 0] + m[..., 1, 1]
    if statistics == "thermal":
        det = m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
        d1 = lam * tr + lam * lam * det
        return -d1 / (1.0 + d1)
    if statistics == "poisson":
        return jnp.expm1(-lam * tr)
    raise ValueError(f"statistics = {statistics!r}: must be one of {', '.join(STATISTICS)}")


def no_photon_table(lam, eta_a, eta_b, theta_a, theta_b, statistics: str = "thermal"):
    """(4, 4): N(S_A, S_B), the probability that no photon reaches any detector of S_A and S_B.

    ``lam`` is lambda = mu / 2 (both statistics); see the module docstring for the formulas.
    Scalars only (vmap for batches).
    """
    return 1.0 + _no_photon_minus_one(lam, eta_a, eta_b, theta_a, theta_b, statistics)


def presence_table(lam, eta_a, eta_b, theta_a, theta_b, statistics: str = "thermal"):
    """(4, 4): P(photons reach exactly Alice's pattern C_A and Bob's C_B), before dark counts.

    Inclusion-exclusion on N - 1 (every row of the transform but "none" sums to zero, so the
    constant 1 only enters the (none, none) cell): a cell's absolute error is then about 1e-16
    times the probability that a photon reaches either side, not 1e-16.
    """
    w = jnp.asarray(_MOBIUS)
    p = w @ _no_photon_minus_one(lam, eta_a, eta_b, theta_a, theta_b, statistics) @ w.T
    return p.at[0, 0].add(1.0)


def dark_matrix(p_dark, click_model: str = "threshold"):
    """(4, 4): D[p, o] = P(side outcome o | photon pattern p) with dark counts p_dark per detector."""
    d = jnp.asarray(p_dark, dtype=jnp.float64)
    k = 1.0 - d
    zero = jnp.zeros_like(d)
    one = jnp.ones_like(d)
    none_row = jnp.stack([k * k, d * k, d * k, d * d])
    if click_model == "threshold":
        rows = [none_row, jnp.stack([zero, k, zero, d]), jnp.stack([zero, zero, k, d]),
                jnp.stack([zero, zero, zero, one])]
    elif click_model == "ma2007":
        rows = [none_row, jnp.stack([zero, one, zero, zero]), jnp.stack([zero, zero, one, zero]),
                jnp.stack([zero, zero, zero, one])]
    else:
        raise ValueError(f"click_model = {click_model!r}: must be one of {', '.join(CLICK_MODELS)}")
    return jnp.stack(rows)


def swap_bob(table):
    """The table with Bob's bits exchanged (last axis: bit 0 <-> bit 1)."""
    return table[..., _SWAP]


def angle_table(lam, eta_a, eta_b, p_dark_a, p_dark_b, error, theta_a, theta_b,
                statistics: str = "thermal", click_model: str = "threshold"):
    """(4, 4): P(Alice outcome, Bob outcome) per pulse with analysers at theta_a, theta_b.

    ``error`` is e, the pair's error probability in matched bases (module docstring).
    """
    pres = presence_table(lam, eta_a, eta_b, theta_a, theta_b, statistics)
    t = dark_matrix(p_dark_a, click_model).T @ pres @ dark_matrix(p_dark_b, click_model)
    e = jnp.asarray(error, dtype=jnp.float64)
    return (1.0 - e) * t + e * swap_bob(t)


def outcome_table(lam, eta_a, eta_b, p_dark_a, p_dark_b, error, statistics: str = "thermal",
                  click_model: str = "threshold"):
    """(2, 2, 4, 4): [Alice basis, Bob basis, Alice outcome, Bob outcome], bases (Z, X), each
    (basis pair) block the probabilities per pulse given that pair of bases (sums to 1)."""
    rows = []
    for ta in BASIS_ANGLES:
        rows.append(jnp.stack([angle_table(lam, eta_a, eta_b, p_dark_a, p_dark_b, error, ta, tb,
                                           statistics, click_model) for tb in BASIS_ANGLES]))
    return jnp.stack(rows)


@pytree_dataclass
class TwoArmLink:
    """A pair source between Alice and Bob, fiber on both arms, two threshold detectors each.

    Args:
        source: the :class:`PairSource` (mean pair number, statistics, visibility, position, and
            the coincidence window with its jitter and dark-count rate: :meth:`detection`).
        length_km: total fiber length Alice - source - Bob, km (split by the source's position).
        loss_db_per_km: fiber loss of both arms, dB/km.
        efficiency_a, efficiency_b: each receiver's detection efficiency (detector and optics).
        p_dark_a, p_dark_b: dark-count probability per detector per gate on each side.
        misalignment: e_d, the pair's intrinsic error probability (source and both arms together,
            Ma, Fung, Lo), one number for the link.
        click_model: "threshold" (physical) or "ma2007" (Ma, Fung, Lo's dark counts).
    """

    source: PairSource = None
    length_km: float = 0.0
    loss_db_per_km: float = 0.21
    efficiency_a: float = 0.045
    efficiency_b: float = 0.045
    p_dark_a: float = 8.500003612503071e-7
    p_dark_b: float = 8.500003612503071e-7
    misalignment: float = 0.033
    click_model: str = static("threshold")

    def __post_init__(self):
        if self.source is None:
            object.__setattr__(self, "source", PairSource())

    @classmethod
    def gys2004(cls, length_km: float = 0.0, source: PairSource | None = None, **fields) -> "TwoArmLink":
        """Both arms with the GYS detectors of :func:`qmc.detectors.gys2004` (eta 4.5 %,
        Y0 = 1.7e-6 per side, e_d = 3.3 % for the pair) and 0.21 dB/km fiber."""
        from qmc.detectors import gys2004
        det = gys2004()
        values = dict(length_km=length_km, loss_db_per_km=0.21, efficiency_a=det.efficiency,
                      efficiency_b=det.efficiency, p_dark_a=det.p_dark, p_dark_b=det.p_dark,
                      misalignment=det.misalignment)
        values.update(fields)
        return cls(source=PairSource() if source is None else source, **values)

    def arm_lengths_km(self):
        """(L_A, L_B) in km."""
        return self.source.arm_lengths_km(self.length_km)

    def transmittances(self):
        """(eta_A, eta_B): fiber transmittance of each arm times its receiver's efficiency."""
        la, lb = self.arm_lengths_km()
        return (db_to_transmittance(self.loss_db_per_km * la) * self.efficiency_a,
                db_to_transmittance(self.loss_db_per_km * lb) * self.efficiency_b)

    def pair_error(self):
        """e: misalignment and the source's visibility together (:meth:`PairSource.pair_error`)."""
        return self.source.pair_error(self.misalignment)

    def detection(self):
        """(eta_A, eta_B, p_dark_A, p_dark_B) as the outcome table reads them: the arms'
        :meth:`transmittances` and the per-gate ``p_dark``; with the source's coincidence window
        (:mod:`qmc.entanglement.window`) Bob's arm times the capture erf(w / (2 sqrt(2) sigma))
        and, for a dark-count rate R, p = 1 - exp(-R w) per detector on both sides. The one
        definition that the table, the engines (through it), BBM92 and CHSH all use."""
        eta_a, eta_b = self.transmittances()
        src = self.source
        if src.coincidence_window_ns is None:
            return eta_a, eta_b, self.p_dark_a, self.p_dark_b
        eta_b = eta_b * window_capture(src.coincidence_window_ns, src.timing_jitter_ps)
        if src.dark_count_rate_hz is None:
            return eta_a, eta_b, self.p_dark_a, self.p_dark_b
        p = window_dark_probability(src.dark_count_rate_hz, src.coincidence_window_ns)
        return eta_a, eta_b, p, p

    def background_yields(self):
        """(Y0A, Y0B) = 1 - (1 - p_dark)^2: Ma's background yield of each side (per window when
        the source has a coincidence window and a dark-count rate)."""
        _, _, p_a, p_b = self.detection()
        return (1.0 - (1.0 - p_a) ** 2, 1.0 - (1.0 - p_b) ** 2)

    def table(self):
        """(2, 2, 4, 4): :func:`outcome_table` of this link (:meth:`detection`)."""
        eta_a, eta_b, p_a, p_b = self.detection()
        return outcome_table(self.source.pair_lambda, eta_a, eta_b, p_a, p_b,
                             self.pair_error(), self.source.statistics, self.click_model)

    def checks(self):
        return [
            Range("length_km", 0.0), Range("loss_db_per_km", 0.0),
            Range("efficiency_a", 0.0, 1.0), Range("efficiency_b", 0.0, 1.0),
            Range("p_dark_a", 0.0, 1.0), Range("p_dark_b", 0.0, 1.0),
            Range("misalignment", 0.0, 0.5),
            Rule("click_model", lambda s, xp: xp.asarray(s.click_model in CLICK_MODELS),
                 f"must be one of {', '.join(CLICK_MODELS)}"),
        ]
