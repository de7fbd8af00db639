"""Reference links with closed forms, and an independent photon-number sum, for the tests.

Everything here is plain Python / numpy float64, written without the library's engine, so that
tests can check ``qmc.engines.exact`` (and, later, the Monte Carlo engines) against it.

Symbols (one pulse class: Alice's basis a, Bob's basis b, Alice's bit x):

    mu      mean photon number of a weak coherent (Poisson) pulse
    eta     total transmittance, channel times detector efficiency (``Link.transmittance()``)
    p       dark-count probability per detector per gate (``p_dark``); q = 1 - p
    e_d     misalignment: in the matched basis a photon reaches the wrong detector w.p. e_d
    eta_0, eta_1   efficiency with which one photon reaches detector 0 / detector 1:
                   matched basis, x = 0: (eta (1 - e_d), eta e_d); x = 1: swapped;
                   mismatched basis: (eta / 2, eta / 2).
    Y0      Ma's background yield, 1 - (1 - p)^2 = p (2 - p) (computed in the second form:
            the first loses the relative precision of a small p)

Closed forms (outcome order: no click, detector 0 only, detector 1 only, double click):

1. Weak coherent pulse, physical two-detector ("threshold") model. A phase-randomized coherent
   state split by a beam splitter gives independent Poisson photon numbers at the two detectors,
   with means mu eta_0 and mu eta_1, and dark counts are independent, so the detectors fire
   independently, with

       f_j = 1 - q exp(-mu eta_j),
       P = ((1 - f_0)(1 - f_1),  f_0 (1 - f_1),  (1 - f_0) f_1,  f_0 f_1).

2. Ma et al.'s linear model (Ma, Qi, Zhao, Lo, PRA 72, 012326 (2005), Eqs. (2)-(6)):

       Q = Y0 + 1 - exp(-eta mu),   E Q = Y0 / 2 + e_d (1 - exp(-eta mu))   (matched basis),

   no double clicks; in the mismatched basis each detector gets Q / 2.

3. n-photon (Fock) pulse, threshold model: each photon independently goes to detector 0, to
   detector 1 or is lost (multinomial with (eta_0, eta_1, 1 - eta_0 - eta_1)); then each detector
   also fires on its own dark count. :func:`direct_sum_outcomes` sums this over photon numbers
   n = 0..N weighted by any photon-number distribution (Poisson for a weak coherent pulse), with
   exact integer multinomial coefficients and ``math.fsum``: every term is positive, so the
   result carries only the rounding of each term (about 2 N + 10 ulps), no cancellation.

4. Single photon, threshold model (matched basis):
       Y1 = 1 - q^2 (1 - eta) = eta + (1 - eta) Y0,
       e1 Y1 = eta e_d q + (1 - eta) p q + [eta p + (1 - eta) p^2] / 2
   (wrong detector only, plus half the double clicks; :func:`single_photon_threshold`).

GYS parameters (Gobby, Yuan, Shields, APL 84, 3762 (2004)) as used by Lo, Ma, Chen, PRL 94,
230504 (2005) and Ma, Qi, Zhao, Lo, PRA 72, 012326 (2005): eta_Bob = 4.5 %, Y0 = 1.7e-6,
e_d = 3.3 %, 0.21 dB/km, f_EC = 1.22.
"""

from __future__ import annotations

import math

import numpy as np

import qmc
from qmc.detectors import gys2004

EPS = float(np.finfo(np.float64).eps)

# --- GYS 2004 as used by Lo, Ma, Chen (2005) and Ma, Qi, Zhao, Lo (2005) ---------------------
GYS_EFFICIENCY = 0.045
GYS_Y0 = 1.7e-6
GYS_E_D = 0.033
GYS_LOSS_DB_PER_KM = 0.21
GYS_F_EC = 1.22
GYS_NU = 0.05  # weak decoy intensity of Ma et al.'s GYS example

OUTCOMES = ("no_click", "click_0", "click_1", "double_click")


# --- builders ------------------------------------------------------------------------------
def wcp_link(eta: float, p_dark: float, e_d: float, click_model: str = "threshold", source=None) -> qmc.Link:
    """A link of total transmittance exactly ``eta``: a 0 dB attenuator and detectors of
    efficiency ``eta`` (10^0 = 1 exactly, so ``link.transmittance() == eta`` bit for bit)."""
    return qmc.Link(
        qmc.WeakCoherentSource() if source is None else source,
        qmc.Attenuator(loss=0.0),
        qmc.ThresholdDetectors(efficiency=eta, p_dark=p_dark, misalignment=e_d, click_model=click_model),
    )


def single_intensity(mu: float, p_z: float = 0.5, key_basis: str = "both") -> qmc.DecoyBB84:
    """One intensity ``mu`` sent with probability 1 (no decoys)."""
    return qmc.DecoyBB84(intensities=(mu,), probabilities=(1.0,), p_z=p_z, key_basis=key_basis)


def gys_link(length_km: float = 0.0, click_model: str = "ma2005") -> qmc.Link:
    """GYS detectors (``qmc.detectors.gys2004``) behind ``length_km`` of 0.21 dB/km fiber."""
    return qmc.Link(
        qmc.WeakCoherentSource(),
        qmc.Fiber(length_km=length_km, loss_db_per_km=GYS_LOSS_DB_PER_KM),
        gys2004(click_model),
    )


def gys_protocol(mu: float = 0.48, nu: float = GYS_NU) -> qmc.DecoyBB84:
    """Lo-Ma-Chen convention: (mu, nu, 0) with probabilities (1, 0, 0), p_z = 1/2, key from both
    bases, so the rate per emitted pulse is their rate per signal pulse with q = 1/2."""
    return qmc.DecoyBB84(intensities=(mu, nu, 0.0), probabilities=(1.0, 0.0, 0.0), p_z=0.5, key_basis="both")


def gys_no_decoy_protocol(mu: float = 0.01) -> qmc.DecoyBB84:
    """The no-decoy protocol of the GYS study: a single intensity, p_z = 1/2, both bases."""
    return single_intensity(mu)


# --- closed forms --------------------------------------------------------------------------
def port_efficiencies(eta: float, e_d: float, matched: bool, bit: int) -> tuple[float, float]:
    """(eta_0, eta_1) of one pulse class."""
    if not matched:
        return 0.5 * eta, 0.5 * eta
    right, wrong = eta * (1.0 - e_d), eta * e_d
    return (right, wrong) if bit == 0 else (wrong, right)


def wcp_threshold_outcomes(mu: float, eta: float, p_dark: float, e_d: float, matched: bool, bit: int) -> np.ndarray:
    """Closed form 1: weak coherent pulse, independent detectors. Shape (4,)."""
    eta_0, eta_1 = port_efficiencies(eta, e_d, matched, bit)
    f0 = -math.expm1(math.log1p(-p_dark) - mu * eta_0)  # 1 - q exp(-mu eta_0)
    f1 = -math.expm1(math.log1p(-p_dark) - mu * eta_1)
    return np.array([(1 - f0) * (1 - f1), f0 * (1 - f1), (1 - f0) * f1, f0 * f1])


def ma2005_outcomes(mu: float, eta: float, p_dark: float, e_d: float, matched: bool, bit: int) -> np.ndarray:
    """Closed form 2: Ma et al.'s linear model. Shape (4,). Defined while Y0 + 1 - exp(-eta mu)
    <= 1 (the engine clips the gain at 1 beyond)."""
    y0 = p_dark * (2.0 - p_dark)  # 1 - (1 - p)^2 without cancellation
    signal = -math.expm1(-eta * mu)
    gain = y0 + signal
    wrong = 0.5 * y0 + e_d * signal if matched else 0.5 * gain
    right = gain - wrong
    p0, p1 = (right, wrong) if bit == 0 else (wrong, right)
    return np.array([1.0 - gain, p0, p1, 0.0])


def single_photon_threshold(eta: float, p_dark: float, e_d: float) -> tuple[float, float]:
    """Closed form 4: (Y1, e1) of a single photon, threshold model, matched basis.

    The photon reaches the right detector w.p. eta (1 - e_d), the wrong one w.p. eta e_d, neither
    w.p. 1 - eta; with q = 1 - p:
        Y1          = 1 - q^2 (1 - eta)
        P(wrong only) = eta e_d q + (1 - eta) p q
        P(double)     = eta p + (1 - eta) p^2
        e1 = [P(wrong only) + P(double) / 2] / Y1   (a double click is a random bit)
    """
    q = 1.0 - p_dark
    y1 = eta + (1.0 - eta) * p_dark * (2.0 - p_dark)  # 1 - q^2 (1 - eta) without cancellation
    wrong_only = eta * e_d * q + (1.0 - eta) * p_dark * q
    double = eta * p_dark + (1.0 - eta) * p_dark * p_dark
    return y1, (wrong_only + 0.5 * double) / y1


# --- independent direct sum over photon numbers ----------------------------------------------
def poisson_pmf(mu: float, n_max: int) -> list[float]:
    """[P(0), ..., P(n_max)] of Poisson(mu), each term exp(-mu) mu^n / n! (no recursion)."""
    return [math.exp(-mu) * mu**n / math.factorial(n) if mu > 0 else float(n == 0) for n in range(n_max + 1)]


def poisson_cutoff(mu: float, tail: float = 1e-40) -> int:
    """Smallest N with P(n > N) < ``tail`` for Poisson(mu) (bound: P(N+1) / (1 - mu / (N + 2)))."""
    n = max(1, int(2 * mu) + 1)
    while True:
        p_next = math.exp(-mu) * mu ** (n + 1) / math.factorial(n + 1) if mu > 0 else 0.0
        if p_next / (1.0 - mu / (n + 2)) < tail:
            return n
        n += 1


def n_photon_outcomes(n: int, eta_0: float, eta_1: float, p_dark: float) -> np.ndarray:
    """Outcome probabilities (4,) of an n-photon pulse, by the multinomial sum (closed form 3).

    Photon patterns: none at either detector, some at 0 only, some at 1 only, some at both; then
    dark counts (probability p each, independent) are OR'ed in:
        none   -> (q^2, p q, q p, p^2)
        only 0 -> (0,   q,   0,   p)
        only 1 -> (0,   0,   q,   p)
        both   -> (0,   0,   0,   1)
    """
    lost = max(1.0 - eta_0 - eta_1, 0.0)  # eta_0 + eta_1 = eta <= 1, up to rounding
    patterns = {"none": [], "only0": [], "only1": [], "both": []}
    for n0 in range(n + 1):
        for n1 in range(n - n0 + 1):
            weight = math.comb(n, n0) * math.comb(n - n0, n1)  # exact integer multinomial
            term = weight * eta_0**n0 * eta_1**n1 * lost ** (n - n0 - n1)
            key = "both" if n0 and n1 else "only0" if n0 else "only1" if n1 else "none"
            patterns[key].append(term)
    none, only0, only1, both = (math.fsum(patterns[k]) for k in ("none", "only0", "only1", "both"))
    p, q = p_dark, 1.0 - p_dark
    return np.array([
        none * q * q,
        math.fsum([none * p * q, only0 * q]),
        math.fsum([none * q * p, only1 * q]),
        math.fsum([none * p * p, (only0 + only1) * p, both]),
    ])


def direct_sum_outcomes(pmf: list[float], eta_0: float, eta_1: float, p_dark: float) -> np.ndarray:
    """sum_n pmf[n] * n_photon_outcomes(n, ...), summed with ``math.fsum``. Shape (4,)."""
    rows = [np.asarray(pn * n_photon_outcomes(n, eta_0, eta_1, p_dark)) for n, pn in enumerate(pmf) if pn > 0]
    return np.array([math.fsum(r[i] for r in rows) for i in range(4)])


def direct_sum_table(intensities, eta: float, p_dark: float, e_d: float, n_photons: int | None = None) -> np.ndarray:
    """Reference outcome table (k, 2, 2, 2, 4) for the threshold model.

    ``n_photons=None``: Poisson pulses of the given intensities, summed to the cutoff of
    :func:`poisson_cutoff` (neglected tail < 1e-40). Otherwise an ``n_photons`` Fock source
    (intensities are ignored, as by ``qmc.FockSource``).
    """
    out = np.zeros((len(intensities), 2, 2, 2, 4))
    for k, mu in enumerate(intensities):
        if n_photons is None:
            pmf = poisson_pmf(float(mu), poisson_cutoff(float(mu)))
        else:
            pmf = [0.0] * n_photons + [1.0]
        rows = {}  # only three distinct port splits: matched with bit 0 or 1, and mismatched
        for a in range(2):
            for b in range(2):
                for x in range(2):
                    ports = port_efficiencies(eta, e_d, a == b, x)
                    if ports not in rows:
                        rows[ports] = direct_sum_outcomes(pmf, *ports, p_dark)
                    out[k, a, b, x] = rows[ports]
    return out


def closed_form_table(intensities, eta: float, p_dark: float, e_d: float, click_model: str = "threshold") -> np.ndarray:
    """Outcome table (k, 2, 2, 2, 4) of weak coherent pulses from closed form 1 or 2."""
    row = wcp_threshold_outcomes if click_model == "threshold" else ma2005_outcomes
    out = np.zeros((len(intensities), 2, 2, 2, 4))
    for k, mu in enumerate(intensities):
        for a in range(2):
            for b in range(2):
                for x in range(2):
                    out[k, a, b, x] = row(float(mu), eta, p_dark, e_d, a == b, x)
    return out


def rounding_scale(table: np.ndarray, eta: float, n_photons: int | None = None, intensities=None) -> np.ndarray:
    """Magnitude that bounds the float64 rounding error of each entry of an outcome ``table``.

    A tolerance of a few dozen ulps of this scale is what float64 allows, from two sources:

    * the engine computes a single click as P(detector j fires) - P(double), so its absolute
      error is a few ulps of P(j fires) = P(j only) + P(double); products and sums of positive
      terms (all other entries, and every term of the direct sum) are accurate to a few ulps of
      themselves;
    * outcomes in which photons are lost depend on 1 - eta_0 - eta_1, known to one ulp of 1 (the
      port efficiencies are rounded, and the order of the subtractions is the compiler's), which
      amplifies the relative error by the condition number of (1 - eta)^n, n eta / (1 - eta),
      for an n-photon pulse; for a weak coherent pulse only P(no click) = q^2 exp(-mu eta)
      depends on it, with condition number mu eta.
    """
    scale = np.array(table, dtype=float)
    scale[..., 1] += table[..., 3]
    scale[..., 2] += table[..., 3]
    if n_photons is not None:
        if not eta < 1.0:
            raise ValueError("the relative rounding of (1 - eta)^n is unbounded at eta = 1")
        scale *= 1.0 + n_photons * eta / (1.0 - eta)
    else:
        mu = np.asarray(intensities, dtype=float).reshape(-1, 1, 1, 1)
        scale[..., 0] *= 1.0 + mu * eta
    return scale


def joint_probabilities(table, protocol: qmc.DecoyBB84) -> np.ndarray:
    """P(k, a, b, x, outcome) per emitted pulse: class probability times the conditional table.

    The expected cell frequencies of a Tally (for Monte Carlo tests).
    """
    return np.asarray(protocol.class_probabilities())[..., None] * np.asarray(table)


# ----------------------------------------------------------------------------------------------
# Test links shared by the Monte Carlo engine tests
# ----------------------------------------------------------------------------------------------


def gys_threshold_link(length_km=25.0, **det):
    """GYS-like fiber link (0.21 dB/km; eta 4.5 %, p_dark 8.5e-7, e_d 3.3 %) with the physical
    threshold detector model; ``det`` overrides detector fields."""
    d = dict(efficiency=0.045, p_dark=8.5e-7, misalignment=0.033, click_model="threshold")
    d.update(det)
    return qmc.Link(channel=qmc.Fiber(length_km=length_km, loss_db_per_km=0.21), detector=qmc.ThresholdDetectors(**d))


def random_points(seed, count, max_length_km, log10_p_dark):
    """``count`` valid (link, three-intensity protocol) pairs drawn at random (fixed seed): length
    uniform in [0, max_length_km], efficiency in [0.05, 0.9], p_dark log-uniform over
    ``log10_p_dark`` (lo, hi), misalignment in [0, 0.1], vacuum + two random intensities."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        mu = np.sort(rng.uniform(0.05, 0.9, 2))[::-1]
        probs = rng.dirichlet([4.0, 1.0, 1.0])
        link = gys_threshold_link(
            rng.uniform(0, max_length_km), efficiency=rng.uniform(0.05, 0.9),
            p_dark=10 ** rng.uniform(*log10_p_dark), misalignment=rng.uniform(0.0, 0.1),
        )
        proto = qmc.DecoyBB84(intensities=(mu[0], mu[1], 0.0), probabilities=tuple(probs), p_z=rng.uniform(0.2, 0.9))
        yield link, proto
