"""Bits per second with dead-time saturation, against the stream simulation; the figure smoke test."""

import math

import jax
import numpy as np
import pytest

import qmc
from qmc.analysis import throughput
from qmc.engines.streams import simulate_streams
from qmc.presets import decoy_protocol, gys_link


def test_saturated_rate_is_the_gated_steady_state():
    p, f, tau = 0.02, 1e9, 50e-9  # d = 50 gates
    r = float(throughput.saturated_click_rate_hz(p, f, tau))
    assert r == pytest.approx(f * p / (1 + 50 * p), rel=1e-12)
    assert float(throughput.saturated_click_rate_hz(0.5, 1e12, tau)) < 1 / tau  # saturates at 1 / tau


def test_key_basis_detections_and_time_to_collect_against_the_simulation():
    """Dead time at a high repetition rate: the expected key-basis detections per pulse (exact for
    common dead time without afterpulsing) agree with the stream engine within z = 5. The clicks
    of a dead-time renewal process are sub-Poisson (gap variance < mean^2, Fano factor < 1), and
    the matched-basis detections are an independent thinning of them, so sqrt(n p_det) bounds
    the sd; the factor 2 is a margin for the burn-in."""
    link, prot = gys_link(0.0), decoy_protocol()
    f, tau_dead = 2.5e9, 10e-9  # 25 dead gates
    lk = throughput.with_dead_time(link, tau_dead, f)
    p_det = float(throughput.key_basis_detection_probability(lk, prot))
    p_free = float(throughput.key_basis_detection_probability(link, prot))
    assert p_det < p_free
    n = 2**22
    t = simulate_streams(jax.random.key(4), lk, prot, n, n_streams=1024, chunk_gates=512, burn_in_gates=512)
    detections = float(np.asarray(t.n_detected).sum())  # matched bases, both bases give key
    sd = 2.0 * math.sqrt(n * p_det)
    assert abs(detections - n * p_det) <= 5.0 * sd, (detections, n * p_det, sd)
    t_s = float(throughput.time_to_collect_s(1e6, link, prot, f, tau_dead))
    assert t_s == pytest.approx(1e6 / (f * p_det), rel=1e-12)


def test_key_rate_bps_saturates_with_repetition_rate():
    link, prot = gys_link(10.0), decoy_protocol()
    analysis = qmc.VacuumWeak(f_ec=1.16)
    rates = [float(throughput.key_rate_bps(analysis, link, prot, f, 50e-9)[0]) for f in (1e8, 1e9, 1e10, 1e11)]
    free = [float(throughput.key_rate_bps(analysis, link, prot, f, 0.0)[0]) for f in (1e8, 1e9, 1e10, 1e11)]
    assert all(r > 0 for r in rates)
    assert free[3] / free[2] == pytest.approx(10.0, rel=1e-9)  # no dead time: linear in f
    assert rates[3] / rates[2] < 1.5  # with dead time: saturated


def test_comparison_figure_smoke(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from qmc.studies.afterpulsing import afterpulse_comparison_rows
    from qmc.plots.correlated import approximation_vs_simulation

    link = gys_link(0.0)
    rows = afterpulse_comparison_rows(jax.random.key(0), link, decoy_protocol(), [0.0, 0.05], n_gates=64,
                                      n_streams=256, burn_in_gates=16)
    assert [r["model_rate"] for r in rows] == [False] * 3 + [True] * 3
    png, pdf = qmc.plots.save(approximation_vs_simulation(rows), tmp_path / "fig")
    assert png.exists() and pdf.exists()
