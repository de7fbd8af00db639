"""Exact engine: closed-form probability of every outcome of every pulse class.

``outcome_table(link, protocol)`` has shape (k, 2, 2, 2, 4): intensity k, Alice basis a (Z, X),
Bob basis b (Z, X), Alice bit x, and Bob's outcome (no click, detector 0 only, detector 1 only,
double click), each row conditioned on its pulse class. Differentiable and float64; the Monte
Carlo engines use the same axes, and analyses read both through :class:`Observations`.
Bob's background per detector, dark counts and the noise of classical traffic in the fiber, is
:meth:`qmc.Link.background_click_probability` (the dark-count probability without traffic).

Afterpulsing and dead time make pulses depend on each other, which a per-pulse table cannot hold.
``outcome_table`` then applies the usual closed-form approximation
(:func:`correlated_approximation`; the identity, bit for bit, when both are off), and
:func:`memoryless_table` is the table without it (what the stream engine samples before it
applies the detectors' memory pulse by pulse).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from qmc.detectors.threshold import background_yield
from qmc.freespace.channel import has_fading
from qmc.engines.observations import Observations
from qmc.engines.tally import relative_outcomes
from qmc.sources import FockSource

__all__ = [
    "outcome_table", "memoryless_table", "observations", "port_efficiencies", "photon_number_observations",
    "correlated_approximation", "afterpulse_observations", "photon_outcome_table", "sifted_probabilities",
]


def port_efficiencies(eta, misalignment):
    """Efficiency with which a photon of class (a, b, x) reaches detector 0 and detector 1.

    In the matched basis a photon goes to the detector of Alice's bit with probability 1 - e_d and
    to the other with probability e_d; in the mismatched basis to either with probability 1/2.

    Returns:
        (eta_0, eta_1), each of shape (2, 2, 2) over (a, b, x).
    """
    matched = jnp.eye(2)[:, :, None]  # (a, b, 1)
    bit_is_0 = jnp.asarray([1.0, 0.0])[None, None, :]  # (1, 1, x)
    to_correct = 1.0 - misalignment
    frac_0_matched = bit_is_0 * to_correct + (1.0 - bit_is_0) * misalignment
    frac_1_matched = bit_is_0 * misalignment + (1.0 - bit_is_0) * to_correct
    frac_0 = matched * frac_0_matched + (1.0 - matched) * 0.5
    # Not 1 - frac_0: 1 - (1 - e_d) loses the relative precision of a small e_d (the error port).
    frac_1 = matched * frac_1_matched + (1.0 - matched) * 0.5
    return eta * frac_0, eta * frac_1


def _threshold_table(source, mu, eta_0, eta_1, p_dark):
    """Two independent-noise threshold detectors fed by one pulse (Beaudry et al. squashing).

    ``p_dark`` is each detector's background, dark counts and noise of classical traffic together
    (:meth:`qmc.Link.background_click_probability`; the dark-count probability itself without
    traffic). With D_j the event "detector j fires" (photon or background), q = 1 - p_dark and
    C(x) = 1 - G(1 - x) the probability that a photon survives efficiency x:
      P(no click)  = q^2 G(1 - eta_0 - eta_1)
      P(D_0)       = p_dark + q C(eta_0)
      P(D_0 D_1)   = p_dark^2 + q P(photons at both) + q p_dark C(eta_0 + eta_1)
    and single clicks follow by subtraction. No approximation beyond independent dark counts.
    """
    q = 1.0 - p_dark
    log_q = jnp.log1p(-p_dark)
    p_none = jnp.exp(2.0 * log_q + source.log_p_none(mu, eta_0 + eta_1))
    p_fire_0 = p_dark + q * source.p_any(mu, eta_0)
    p_fire_1 = p_dark + q * source.p_any(mu, eta_1)
    p_double = p_dark**2 + q * source.p_both(mu, eta_0, eta_1) + q * p_dark * source.p_any(mu, eta_0 + eta_1)
    return jnp.stack([p_none, p_fire_0 - p_double, p_fire_1 - p_double, p_double], axis=-1)


def _ma2005_table(source, mu, eta, y0, misalignment, shape):
    """Linear model of Ma, Qi, Zhao, Lo, PRA 72, 012326 (2005), Eqs. (2)-(6), as an outcome table.

    Q = Y0 + C(eta) (for Poisson, Y0 + 1 - exp(-eta mu)), E Q = Y0 / 2 + e_d C(eta) in the matched
    basis, Q / 2 per detector in the mismatched basis, and no double clicks.
    """
    signal = source.p_any(mu, eta)
    gain = jnp.minimum(y0 + signal, 1.0)
    wrong = 0.5 * y0 + misalignment * signal
    # Explicit ranks (k, a, b, x): rank promotion may be set to raise (tests do).
    matched = jnp.eye(2, dtype=bool)[None, :, :, None]
    bit_is_0 = jnp.asarray([True, False])[None, None, None, :]
    wrong, gain = jnp.broadcast_to(wrong, jnp.shape(mu)), jnp.broadcast_to(gain, jnp.shape(mu))
    # Selected, not blended with 0/1 weights, so the mismatched basis is an exact 50/50 split
    # and the error detector's probability is never a difference of two gains.
    p_wrong = jnp.where(matched, wrong, 0.5 * gain)
    p_right = jnp.where(matched, gain - wrong, 0.5 * gain)
    p_0 = jnp.where(bit_is_0, p_right, p_wrong)
    p_1 = jnp.where(bit_is_0, p_wrong, p_right)
    p_0, p_1, gain = (jnp.broadcast_to(v, shape) for v in (p_0, p_1, gain))
    return jnp.stack([1.0 - gain, p_0, p_1, jnp.zeros(shape)], axis=-1)


def outcome_table(link, protocol, source=None):
    """Probabilities of Bob's outcomes for every pulse class.

    With afterpulsing or dead time on, this is :func:`memoryless_table` through
    :func:`correlated_approximation` (an approximation; the stream engine simulates the memory).

    Args:
        link: :class:`qmc.Link`.
        protocol: :class:`qmc.protocols.DecoyBB84` (provides the intensities).
        source: replaces ``link.source`` (used for photon-number-resolved yields).

    Returns:
        Array (k, 2, 2, 2, 4): P(outcome | intensity k, Alice basis, Bob basis, Alice bit).
    """
    table = memoryless_table(link, protocol, source)
    # Mean click probabilities come from the pulses actually sent (the link's own source).
    reference = table if source is None else memoryless_table(link, protocol)
    return correlated_approximation(table, link.detector, protocol.class_probabilities(), reference)


def afterpulse_observations(gain, error_gain, p_afterpulse):
    """The usual afterpulsing approximation on gains: Q (1 + p_ap) and E Q + p_ap Q / 2.

    Each click adds p_ap afterpulse clicks, counted in the same class, and an afterpulse repeats
    the bit of an earlier, independent pulse, so half of them are errors. This is the system model
    of Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307 (2014), Sec. IV (R_k = D_k (1 + p_ap),
    e_k = ... + p_ap D_k / 2). It ignores that the afterpulse of a click lands in a later pulse of
    any class (a vacuum decoy inherits the signal's afterpulses), cascades and dead time: compare
    with :class:`qmc.engines.StreamEngine` (docs/correlated.md).

    Returns:
        ``(gain, error_gain)``, broadcast shapes.
    """
    return gain * (1.0 + p_afterpulse), error_gain + p_afterpulse * gain / 2.0


def correlated_approximation(table, detector, class_probabilities, reference=None):
    """Closed-form approximation of afterpulsing and dead time on a memoryless outcome table.

    1. Afterpulsing (:func:`afterpulse_observations`, row by row): each row's click probability
       C gains p_eff C clicks with a random bit (half to each detector), taken from "no click",
       with p_eff = p_ap r^d the afterpulse probability surviving a dead time of d gates
       (r = exp(-1 / tau), see :class:`qmc.detectors.ThresholdDetectors`).
    2. Dead time, non-paralyzable: a detector is live with probability L = 1 / (1 + d p_bar),
       p_bar its mean click probability per gate over all classes (step 1 included), independent
       of the current pulse. ``"common"``: every click of the row is kept with probability L
       (exact for the marginal per-pulse law without afterpulsing: the steady state of a renewal
       process). ``"per_detector"``: each detector masked by its own L_j, independently.

    Both steps are the identity, bit for bit, when ``p_afterpulse = 0`` and ``dead_time_gates = 0``.

    Args:
        table: memoryless table (..., k, 2, 2, 2, 4).
        detector: :class:`qmc.detectors.ThresholdDetectors`.
        class_probabilities: P(class), (k, 2, 2, 2).
        reference: memoryless table giving the mean click probabilities (default ``table``).

    Returns:
        The approximate table, same shape.
    """
    reference = table if reference is None else reference
    d = jnp.asarray(detector.dead_time_gates, jnp.float64)
    p_eff = detector.p_afterpulse * detector.afterpulse_ratio() ** d

    def afterpulse(t):
        clicks = t[..., 1] + t[..., 2] + t[..., 3]
        a = p_eff * clicks
        return jnp.stack([t[..., 0] - a, t[..., 1] + 0.5 * a, t[..., 2] + 0.5 * a, t[..., 3]], axis=-1)

    table, reference = afterpulse(table), afterpulse(reference)
    w = jnp.asarray(class_probabilities)[..., None]  # (k, 2, 2, 2, 1)
    mean = jnp.sum(w * reference, axis=(-5, -4, -3, -2))  # (..., 4): mean outcome law per gate
    n0, c0, c1, c2 = (table[..., j] for j in range(4))
    if detector.dead_time_mode == "common":
        live = 1.0 / (1.0 + d * (mean[..., 1] + mean[..., 2] + mean[..., 3]))
        live = live[..., None, None, None, None]
        a, b, c = live * c0, live * c1, live * c2
    else:
        live0 = (1.0 / (1.0 + d * (mean[..., 1] + mean[..., 3])))[..., None, None, None, None]
        live1 = (1.0 / (1.0 + d * (mean[..., 2] + mean[..., 3])))[..., None, None, None, None]
        a = live0 * (c0 + c2 * (1.0 - live1))
        b = live1 * (c1 + c2 * (1.0 - live0))
        c = live0 * live1 * c2
    none = n0 + ((c0 + c1 + c2) - (a + b + c))
    return jnp.stack([none, a, b, c], axis=-1)


def memoryless_table(link, protocol, source=None):
    """:func:`outcome_table` without afterpulsing and dead time: independent pulses (k, 2, 2, 2, 4).

    A fading channel (:class:`qmc.freespace.channel.FreeSpaceChannel`) gives the average of the
    fixed-transmittance tables over its fading law, sum_i w_i P(outcome | X = x_i), by the law's
    quadrature (:meth:`qmc.freespace.fading.Fading.quadrature`).
    """
    if has_fading(link.channel):
        nodes, weights = link.channel.fading.quadrature()

        def at(x):
            return memoryless_table(dataclasses.replace(link, channel=link.channel.frozen(x)), protocol, source)

        return jnp.tensordot(weights, jax.vmap(at)(nodes), axes=1)
    source = link.source if source is None else source
    det = link.detector
    eta = link.transmittance()
    mu = jnp.asarray(protocol.intensities)[:, None, None, None]  # (k, 1, 1, 1)
    shape = (mu.shape[0], 2, 2, 2)
    # Per-detector background: dark counts or noise from classical traffic (det.p_dark itself,
    # the same object, when the fiber carries no traffic).
    p_bg = link.background_click_probability()
    if det.click_model == "ma2005":
        y0 = background_yield(p_bg)
        return _ma2005_table(source, mu, eta, y0, det.misalignment, shape)
    if det.click_model != "threshold":
        raise ValueError(f"detector.click_model = {det.click_model!r}: must be 'threshold' or 'ma2005'")
    eta_0, eta_1 = port_efficiencies(eta, det.misalignment)
    table = _threshold_table(source, mu, eta_0[None], eta_1[None], p_bg)
    return jnp.broadcast_to(table, shape + (4,))  # a Fock source ignores mu: keep the k axis


def owns_layout(protocol) -> bool:
    """Whether ``protocol`` owns its outcome layout (``joint_probabilities`` and ``reduction``,
    e.g. :class:`qmc.protocols.BBM92`) instead of BB84's classes x outcomes."""
    return hasattr(protocol, "joint_probabilities") and hasattr(protocol, "reduction")


def joint_probabilities(link, protocol):
    """P(cell) per pulse, flat: BB84's P(class) P(outcome | class) (k 2 2 2 4 cells), or the
    cells of a protocol that owns its layout. What the Monte Carlo engines draw from."""
    if owns_layout(protocol):
        return jnp.ravel(protocol.joint_probabilities(link))
    return jnp.ravel(protocol.class_probabilities()[..., None] * outcome_table(link, protocol))


def observations(link, protocol, source=None) -> Observations:
    """Expected gains and error gains per intensity and matched basis (no finite statistics)."""
    if owns_layout(protocol):
        from qmc.engines.cells import cell_observations

        return cell_observations(joint_probabilities(link, protocol), protocol.reduction())
    return Observations.from_table(outcome_table(link, protocol, source))


def photon_number_observations(link, protocol, n_photons: int) -> Observations:
    """Yield Y_n (as ``gain``) and e_n Y_n (as ``error_gain``) of n-photon pulses, per basis.

    Evaluates the same outcome table with a Fock source, so decoy estimates can be compared with
    the true single-photon quantities (the infinite-decoy limit of Lo, Ma, Chen 2005).
    """
    rep = getattr(link.source, "rep_rate_hz", 1e9)
    fock = FockSource(n_photons=n_photons, rep_rate_hz=rep)
    return observations(link, dataclasses.replace(protocol), fock)


def photon_outcome_table(link, protocol):
    """P(photon bin, outcome | class): shape (k, 2, 2, 2, 3, 4), bins (0, 1, 2 or more photons).

    P(n, o | class) = P(n | mu_k) P(o | class, n photons) for n = 0, 1 (a Fock source through the
    exact engine), and the 2+ bin is the rest, P(o | class) - sum over n < 2 (clipped at 0).
    """
    table = outcome_table(link, protocol)  # (k, 2, 2, 2, 4)
    mu = jnp.asarray(protocol.intensities)
    parts = []
    for n in (0, 1):
        t_n = outcome_table(link, protocol, FockSource(n_photons=n))
        pn = link.source.photon_number_pmf(mu, n)[:, None, None, None, None]
        parts.append(pn * t_n)
    rest = jnp.maximum(table - parts[0] - parts[1], 0.0)
    return jnp.stack(parts + [rest], axis=-2)


def sifted_probabilities(link, protocol, photon_counts: bool = False):
    """Cell probabilities of a :class:`SiftedTally` for one emitted pulse.

    Returns:
        ``(p_class, p_outcome)``: P(matched class (k, b)) shape (k, 2), and P(outcome | matched
        class), shape (k, 2, 4), or (k, 2, 3, 4) with photon bins. Bits are uniform, so the
        per-bit outcome rows are averaged.
    """
    pb = protocol.basis_probabilities()
    p_class = jnp.asarray(protocol.probabilities)[:, None] * (pb**2)[None, :]
    if photon_counts:
        full = photon_outcome_table(link, protocol)  # (k, 2, 2, 2, 3, 4)
    else:
        full = outcome_table(link, protocol)
    rel = relative_outcomes(full * 0.5, photons=photon_counts)  # average over Alice's (uniform) bit
    return p_class, rel
