"""Classical traffic varying in time (qmc.channels.traffic): levels, the exact engine's mean noise,
the pulse engine's per-pulse noise checked against the exact tables of the levels, duty cycle 1
bit for bit the constant traffic, trace files, and the wdm_bursty_traffic study.

Monte Carlo tolerances: every cell of a tally against its expectation sum_l N_l P_l(cell) (N_l the
pulses emitted at level l, known exactly), |z| < 5 with z = (count - mean) / sqrt(mean) (Poisson
approximation of the binomial, conservative).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qmc
from qmc import presets
from qmc.channels.raman import ClassicalChannel, ClassicalTraffic
from qmc.channels.traffic import Bursts, Constant, Trace, floor_div
from qmc.engines import exact, pulse
from qmc.link import Link, at_noise_level, noise_photons

RATE_HZ = 1e9
SMALL = 2**16
BLOCKS = {"block_pulses": SMALL, "chunk": SMALL}  # small blocks: quick programs, same law


def _link(profile, power_dbm=-12.0, length_km=30.0):
    base = presets.gys_link(length_km)
    source = dataclasses.replace(base.source, wavelength_nm=1550.12)
    return Link(source, base.channel, base.detector,
                ClassicalChannel(1549.32, power_dbm, isolation_db=100.0, profile=profile))


def _expected(link, protocol, start, n):
    """sum_l N_l P(class) P(outcome | class, level l): the exact mean tally of the window."""
    profile = link.classical.profile
    counts = np.asarray(profile.pulses_per_level(start, n, link.source.rep_rate_hz))
    joint = [np.asarray(protocol.class_probabilities()[..., None] * exact.outcome_table(at_noise_level(link, f), protocol))
             for f in np.asarray(profile.factors())]
    return sum(c * j for c, j in zip(counts, joint))


def test_floor_div_is_exact_integer_division():
    r = np.array([0, 1, 2**40 + 7, 2**51 - 1, 999_999_999_999, 123456789012345], np.int64)
    for d in (1, 3, 1000, 2**31 + 11, 999_999_937):
        q, m = floor_div(r, d)
        np.testing.assert_array_equal(np.asarray(q), r // d)
        np.testing.assert_array_equal(np.asarray(m), r % d)


@pytest.mark.parametrize("profile", [Bursts(0.3, 1e-6, 2.5e-7), Bursts(1.0, 1e-6), Bursts(0.01, 3e-9),
                                     Trace([1.0, 0.0, 3.0, 2.0, 0.5], 7e-9)])
def test_pulses_per_level_counts_the_levels_of_the_pulses(profile):
    for start, n in ((0, 10_000), (12_345, 77_777), (10**12 + 3, 5_000)):
        level = np.asarray(profile.level_of(np.arange(start, start + n, dtype=np.int64), RATE_HZ))
        counted = np.bincount(level, minlength=profile.n_levels)
        np.testing.assert_array_equal(np.asarray(profile.pulses_per_level(start, n, RATE_HZ)), counted)


def test_bursts_are_on_for_the_burst_and_off_for_the_rest_of_the_period():
    level = np.asarray(Bursts(0.25, 1e-8, 0.0).level_of(np.arange(80), RATE_HZ))  # 10 on, 30 off
    np.testing.assert_array_equal(level[:40], [1] * 10 + [0] * 30)
    np.testing.assert_array_equal(level[40:], level[:40])


def test_the_exact_engine_sees_the_time_averaged_noise():
    constant = noise_photons(_link(Constant()))
    assert float(noise_photons(_link(Bursts(0.2, 1e-3)))) == pytest.approx(0.2 * float(constant), rel=1e-12)
    assert float(noise_photons(_link(Trace([1.0, 3.0], 1e-3)))) == pytest.approx(2.0 / 3.0 * float(constant), rel=1e-12)
    assert float(noise_photons(_link(Constant(0.5)))) == 0.5 * float(constant)


@pytest.mark.parametrize("path", ["fast", pytest.param("physical", marks=pytest.mark.slow)])  # physical: 15 s
def test_duty_cycle_one_is_the_constant_traffic_bit_for_bit(path):
    protocol = presets.decoy_protocol()
    key = jax.random.key(11)
    n = 2 * SMALL + 1001  # three blocks, the last one partial
    constant = pulse.simulate(key, _link(Constant()), protocol, n, path=path, **BLOCKS)
    bursty = pulse.simulate(key, _link(Bursts(1.0, 3e-6, 1e-6)), protocol, n, path=path, start_pulse=777, **BLOCKS)
    np.testing.assert_array_equal(np.asarray(bursty.counts), np.asarray(constant.counts))


@pytest.mark.parametrize("path", ["fast", pytest.param("physical", marks=pytest.mark.slow)])
@pytest.mark.parametrize("profile", [Bursts(0.2, 2e-4, 3e-5), Trace([0.2, 1.0, 0.0, 0.6], 1.5e-4)])
def test_the_pulse_engine_draws_each_pulse_from_its_level(path, profile):
    link = _link(profile, power_dbm=-8.0)  # noise clicks of order 1e-3 per gate while on
    protocol = presets.decoy_protocol()
    start, n = 123_457, 2**20
    tally = pulse.simulate(jax.random.key(5), link, protocol, n, path=path, start_pulse=start,
                           block_pulses=2**18, chunk=2**18)
    counts = np.asarray(tally.counts, float).ravel()
    mean = _expected(link, protocol, start, n).ravel()
    assert counts.sum() == n
    z = (counts - mean) / np.sqrt(np.maximum(mean, 1.0))
    assert np.max(np.abs(z)) < 5.0
    # The levels differ enough that the same pulses at the mean noise are not what was drawn: the
    # noise clicks of each level are resolved (the test can fail).
    levels = np.asarray(profile.pulses_per_level(start, n, RATE_HZ))
    assert np.count_nonzero(levels) >= 2


def test_the_fused_kernel_is_not_asked_for_per_level_tables():
    link = _link(Bursts(0.5, 1e-5))
    protocol = presets.decoy_protocol()
    key = jax.random.key(2)
    a = pulse.simulate(key, link, protocol, SMALL, methods=("search_top", "fused"), **BLOCKS)  # falls back to XLA
    b = pulse.simulate(key, link, protocol, SMALL, **BLOCKS)
    np.testing.assert_array_equal(np.asarray(a.counts), np.asarray(b.counts))


def test_a_channel_profile_moves_onto_traffic_of_one_and_different_ones_are_refused():
    bursts = Bursts(0.5, 1e-3)
    traffic = ClassicalTraffic((ClassicalChannel(1549.32, -10.0, profile=bursts), ClassicalChannel(1548.0, -10.0)))
    assert traffic.profile is bursts and all(isinstance(c.profile, Constant) for c in traffic.channels)
    with pytest.raises(qmc.ValidationError, match="classical.profile"):
        ClassicalTraffic((ClassicalChannel(1549.32, -10.0, profile=bursts),
                          ClassicalChannel(1548.0, -10.0, profile=Bursts(0.2, 1e-3))))


@pytest.mark.parametrize("field, value, message", [
    ("duty_cycle", 0.0, "classical.profile.duty_cycle = 0 is out of range: must be in \\(0, 1\\]"),
    ("duty_cycle", 1.5, "classical.profile.duty_cycle = 1.5 is out of range: must be in \\(0, 1\\]"),
    ("burst_s", -1.0, "classical.profile.burst_s = -1 is out of range"),
])
def test_bad_bursts_get_one_line_errors(field, value, message):
    channel = ClassicalChannel(1549.32, -10.0, profile=Bursts(**{field: value}))
    with pytest.raises(qmc.ValidationError, match=message):
        qmc.validate(channel, "classical.")


def test_a_trace_file_is_read_in_any_unit(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("# a measured trace\ntime_s,power_dbm\n0.0,0.0\n0.001,-10.0\n0.002,-inf\n")
    trace = Trace(path=str(path))
    np.testing.assert_allclose(np.asarray(trace.factors()), [1.0, 0.1, 0.0], rtol=1e-12)
    assert float(trace.step_s) == pytest.approx(1e-3)
    (tmp_path / "mw.csv").write_text("time_s,power_mw\n0,2\n1,1\n")
    np.testing.assert_allclose(np.asarray(Trace.from_csv(tmp_path / "mw.csv").factors()), [1.0, 0.5])


@pytest.mark.parametrize("text, message", [
    ("time,power_mw\n0,1\n1,1\n", "needs columns time_s"),
    ("time_s,power_mw\n0,1\n2,1\n3,1\n", "uniformly spaced"),
    ("time_s,power_mw\n0,1\n1,-1\n", ">= 0"),
    ("time_s,power_mw\n0,1\n1,x\n", "not a number"),
])
def test_a_bad_trace_file_is_refused_in_one_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(qmc.ValidationError, match=f"classical.profile.path = .*{message}"):
        Trace(path=str(path))


def test_the_bursty_study_splits_sessions_into_burst_and_quiet_ones():
    """Sessions as long as the bursts at duty cycle 1/2: every other session is inside a burst. At
    this launch power the burst's noise leaves no finite key and the quiet sessions keep theirs, so
    the sessions' mean key length is far above the mean-noise answer (the point of the study)."""
    from qmc.analysis import AsymptoticTwoDecoy, FiniteLim2014
    from qmc.engines import PulseEngine
    from qmc.studies.wdm_bursts import wdm_bursty_traffic

    n = 10**7
    base = presets.gys_link(25.0)
    detector = qmc.ThresholdDetectors(efficiency=0.92, p_dark=1.3e-8, misalignment=0.01, gate_ns=0.1)
    link = Link(dataclasses.replace(base.source, wavelength_nm=1550.12), base.channel, detector,
                ClassicalChannel(1549.32, -5.0, isolation_db=100.0, profile=Bursts(0.5, n / RATE_HZ)))
    protocol = qmc.DecoyBB84(intensities=(0.5, 0.1, 2e-4), probabilities=(0.5, 0.3, 0.2), p_z=0.5, key_basis="Z")
    analyses = {"finite": FiniteLim2014(block_size=1e9, eps_sec=1e-10, eps_cor=1e-15, kappa=1e-15),
                "asymptotic": AsymptoticTwoDecoy()}
    rows = [r for c in wdm_bursty_traffic(jax.random.key(0), link, protocol, analyses, [25.0], [0.5],
                                          PulseEngine(n_pulses=n), 2) for r in c.rows]
    by = {(r["analysis"], r["estimate"]): r for r in rows}
    assert len(rows) == 6 and all(not math.isnan(r["key_rate"]) for r in rows)
    sessions = by[("finite", "pulse_sessions")]
    assert sessions["sessions_with_key"] == 1 and sessions["key_length_min_bits"] == 0.0
    assert sessions["key_length_bits"] > 2.0 * by[("finite", "mean_noise")]["key_length_bits"]
    # Pooled counts average the noise linearly: the pooled finite key is the mean-noise one of the
    # same pulses within a few percent (statistics of 2e7 pulses).
    assert by[("finite", "pulse_pooled")]["key_rate"] == pytest.approx(by[("finite", "mean_noise_pooled")]["key_rate"],
                                                                         rel=0.05)
