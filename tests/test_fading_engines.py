"""Fading in the engines (qmc.freespace.channel, qmc.engines.slots, qmc.analysis.pooled).

The exact engine's faded table is checked against an independent integral over the law's density
(scipy quad); Monte Carlo passes against the exact pooled counts: the mean of P passes within
5 standard errors estimated from the passes themselves (fading makes the per-pass counts vary far
more than multinomial counts do, so the multinomial variance would be too small); the pulse
engine's slots against the exact tables of the same frozen draws (|z| < 5 per cell).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import qmc
from qmc.analysis import FiniteLim2014
from qmc.analysis.pooled import PooledSlots, pooled_counts
from qmc.engines import exact
from qmc.engines.slots import frozen_slots, pass_tallies_block, pass_tally_pulse
from qmc.freespace.channel import FreeSpaceChannel
from qmc.freespace.fading import Fading
from qmc.freespace.pass_link import pass_link

PROTOCOL = qmc.DecoyBB84(intensities=(0.8, 0.1, 2e-4), probabilities=(0.5, 0.25, 0.25), p_z=0.5, key_basis="Z")
DETECTOR = qmc.ThresholdDetectors(efficiency=0.5, p_dark=1e-6, misalignment=0.01)
SOURCE = qmc.WeakCoherentSource(rep_rate_hz=1e8, wavelength_nm=850.0)
LAWS = [Fading("lognormal", rytov_variance=0.5), Fading("gamma_gamma", rytov_variance=2.0),
        Fading("beam_wander", beam_width_m=0.8, aperture_radius_m=0.5, wander_sigma_m=0.4)]


def _link(loss_db, fading=None):
    return qmc.Link(SOURCE, FreeSpaceChannel(loss_db, fading), DETECTOR)


@pytest.mark.parametrize("law", ["lognormal", "gamma_gamma", "beam_wander"])
def test_zero_variance_is_the_fixed_loss_link_bit_for_bit(law):
    fading = Fading(law, rytov_variance=0.0, beam_width_m=1.0, aperture_radius_m=0.5, wander_sigma_m=0.0)
    fixed = exact.outcome_table(_link(25.0), PROTOCOL)
    faded = exact.outcome_table(_link(25.0, fading), PROTOCOL)
    np.testing.assert_array_equal(np.asarray(faded), np.asarray(fixed))


@pytest.mark.parametrize("fading", LAWS[:2], ids=["lognormal", "gamma_gamma"])
def test_the_exact_engine_averages_over_the_law(fading):
    """The signal's Z gain with fading against int Q(x) f(x) dx by adaptive quadrature."""
    loss = 35.0
    got = float(exact.observations(_link(loss, fading), PROTOCOL).gain[0, 0])

    def gain(x):
        return float(exact.observations(_link(loss, None), PROTOCOL).gain[0, 0]) if x == 1.0 else float(
            exact.observations(dataclasses.replace(_link(loss), channel=FreeSpaceChannel(loss, None, x)),
                               PROTOCOL).gain[0, 0])

    xs = np.linspace(1e-6, 12.0, 400)
    gains = np.array([gain(x) for x in xs])
    pdf = np.asarray(fading.pdf(xs))
    want = integrate.simpson(gains * pdf, x=xs)
    assert got == pytest.approx(want, rel=2e-3)
    # Fading lowers the gain below the linear regime's: it is concave in the transmittance.
    assert got < float(exact.observations(_link(loss), PROTOCOL).gain[0, 0])


def _pass(fading, n_slots=6, slot_s=2e-3):
    loss = jnp.linspace(30.0, 36.0, n_slots)
    return pass_link(SOURCE, DETECTOR, loss, jnp.full(n_slots, slot_s), fading)


@pytest.mark.parametrize("fading", [LAWS[0]] + [pytest.param(f, marks=pytest.mark.slow) for f in LAWS[1:]],
                         ids=["lognormal", "gamma_gamma", "beam_wander"])
def test_monte_carlo_passes_average_to_the_exact_pooled_counts(fading):
    pl = _pass(fading, slot_s=0.1)  # thousands of detections per pass
    n_passes = 400
    tallies = pass_tallies_block(jax.random.key(7), pl, PROTOCOL, jnp.arange(n_passes))
    obs = tallies.observations()
    sent = np.asarray(obs.n_sent)  # (P, k, 2)
    detections = np.asarray(obs.gain) * sent
    expected = pooled_counts(pl, PROTOCOL)
    weight = np.asarray(PROTOCOL.probabilities)[:, None] * np.asarray(PROTOCOL.basis_probabilities())[None, :] ** 2
    want = np.asarray(expected.detections) / weight * sent.mean(axis=0) / float(expected.n_pulses)
    mean, se = detections.mean(axis=0), detections.std(axis=0, ddof=1) / np.sqrt(n_passes)
    assert np.all(np.abs(mean - want) < 5.0 * se + 1e-9)
    # The fading is drawn per slot: passes vary far more than multinomial counts would.
    signal = detections[:, 0, 0]
    assert signal.var(ddof=1) > 5.0 * signal.mean()


def test_the_pulse_engine_draws_each_slot_from_its_frozen_table():
    pl = _pass(LAWS[1], n_slots=3, slot_s=2**17 / 1e8)
    key = jax.random.key(3)
    options = {"block_pulses": 2**15, "chunk": 2**15}
    tally = pass_tally_pulse(key, pl, PROTOCOL, 5, **options)
    frozen, x = frozen_slots(jax.random.fold_in(key, 5), pl)
    assert np.ptp(np.asarray(x)) > 0.1  # the slots' draws differ
    joint = jax.vmap(lambda link: PROTOCOL.class_probabilities()[..., None] * exact.outcome_table(link, PROTOCOL))(frozen)
    want = np.einsum("s,s...->...", np.asarray(pl.slot_pulses), np.asarray(joint)).ravel()
    got = np.asarray(tally.counts, float).ravel()
    assert got.sum() == pytest.approx(float(np.sum(pl.slot_pulses)))
    z = (got - want) / np.sqrt(np.maximum(want, 1.0))
    assert np.max(np.abs(z)) < 5.0


@pytest.mark.slow  # 10 s on 2 cores
def test_the_pooled_pass_key_is_optimizable_and_zero_without_pulses():
    pl = _pass(LAWS[0], n_slots=8, slot_s=10.0)
    analysis = PooledSlots(FiniteLim2014(block_size=1e9, eps_sec=1e-10, eps_cor=1e-15, kappa=1e-15))
    start = analysis.key_rate(pl, PROTOCOL)
    best = qmc.optimize.maximize(analysis, pl, PROTOCOL, validate=False)
    assert float(best.rate.rate) > 0 and float(best.rate.rate) >= float(start.rate)
    empty = analysis.key_rate(pl.masked(jnp.zeros(8, bool)), PROTOCOL)
    assert float(empty.rate) == 0.0 and not np.isnan(float(empty.rate))
