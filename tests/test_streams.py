"""Stream engine (afterpulsing, dead time) against closed forms; the exact engine's approximation.

Tolerances: z = 5. Correlated sequences: the count of clicks of a stationary renewal process
(dead time without afterpulsing) over n gates has variance n sigma^2 / m^3 (m, sigma^2 the mean
and variance of the gap between clicks; Cox, Renewal Theory, Sec. 6.3), summed over independent
streams. Elsewhere: the sample variance of per-stream counts across independent streams (batch
means, one batch per stream).
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

import qmc
from qmc.detectors import ThresholdDetectors
from qmc.engines import exact
from qmc.engines.pulse import simulate
from qmc.engines.streams import StreamEngine, sample_cells, simulate_streams
from qmc.presets import decoy_protocol, gys_link

Z = 5.0


def noise_link(p_dark, **det):
    """Efficiency 0: each detector clicks on its dark counts only, p_dark per gate, any class."""
    d = ThresholdDetectors(efficiency=0.0, p_dark=p_dark, misalignment=0.0, **det)
    return dataclasses.replace(gys_link(0.0), detector=d)


def one_class_protocol():
    return qmc.DecoyBB84(intensities=(0.5,), probabilities=(1.0,), p_z=0.5)


@pytest.mark.parametrize("mode", ["common", "per_detector"])
def test_dead_time_steady_state_click_probability(mode):
    """Click probability per gate with dead time d and click probability p: p / (1 + d p)."""
    p_dark, d = 0.03, 10
    link, prot = noise_link(p_dark, dead_time_gates=d, dead_time_mode=mode), one_class_protocol()
    n_streams, n_gates = 4096, 1024
    t = simulate_streams(jax.random.key(3), link, prot, n_streams * n_gates, n_streams=n_streams,
                         chunk_gates=128, burn_in_gates=512)
    c = np.asarray(t.counts).reshape(-1, 4).sum(axis=0)  # (none, d0, d1, double)
    n = n_streams * n_gates
    if mode == "common":  # one renewal process: a click of either detector
        pairs = [(c[1] + c[2] + c[3], 1.0 - (1.0 - p_dark) ** 2)]
    else:  # two independent renewal processes
        pairs = [(c[1] + c[3], p_dark), (c[2] + c[3], p_dark)]
    for clicks, p in pairs:
        m = d + 1.0 / p  # mean gap: d dead gates, then Geometric(p) live gates
        var_gap = (1.0 - p) / p**2
        sd = math.sqrt(n * var_gap / m**3)
        expected = n * p / (1.0 + d * p)
        assert abs(clicks - expected) <= Z * sd, f"{clicks=}, expected {expected:.1f} +- {sd:.1f}"
    # the exact engine's dead-time factor is the same steady state (exact for common dead time)
    if mode == "common":
        q = exact.observations(link, prot).gain[0, 0]
        assert float(q) == pytest.approx(pairs[0][1] / (1 + d * pairs[0][1]), rel=1e-12)


def _renewal_density(p_ap, tau, j_max):
    """u(j): probability that the afterpulse chain started by a click at gate 0 clicks at gate j
    (no dead time): u = a + a * u, a(j) = p_ap (1 - r) r^(j - 1), r = exp(-1 / tau)."""
    r = math.exp(-1.0 / tau)
    a = np.array([0.0] + [p_ap * (1 - r) * r ** (j - 1) for j in range(1, j_max + 1)])
    u = np.zeros(j_max + 1)
    for j in range(1, j_max + 1):
        u[j] = a[j] + sum(a[i] * u[j - i] for i in range(1, j))
    return u


def test_afterpulse_statistics_follow_the_decay_law():
    """Clicks following an isolated click of detector 0, per gate offset j: the background rate
    plus the afterpulse chain's renewal density u(j) (direct afterpulse p_ap (1 - r) r^(j - 1),
    plus cascades), combined as 1 - (1 - lambda)(1 - u(j))."""
    p_ap, tau, p_dark, w, j_max = 0.2, 4.0, 0.01, 60, 12
    link = noise_link(p_dark, p_afterpulse=p_ap, afterpulse_decay_gates=tau)
    cells = np.asarray(sample_cells(jax.random.key(7), link, one_class_protocol(), n_gates=2048,
                                    n_streams=4096, burn_in_gates=256))
    click = (cells & 1).astype(np.int64)  # detector 0 (alone or in a double click)
    lam = click.mean()
    csum = np.vstack([np.zeros((1, click.shape[1]), np.int64), np.cumsum(click, axis=0)])
    g = np.arange(w, click.shape[0] - j_max)
    isolated = (click[g] == 1) & (csum[g] - csum[g - w] == 0)  # no click in the w gates before
    n_seeds = int(isolated.sum())
    u = _renewal_density(p_ap, tau, j_max)
    for j in range(1, j_max + 1):
        hits = int((click[g + j] * isolated).sum())
        p = 1.0 - (1.0 - lam) * (1.0 - u[j])
        sd = math.sqrt(n_seeds * p * (1 - p))
        assert abs(hits - n_seeds * p) <= Z * sd, f"{j=}: {hits=}, expected {n_seeds * p:.1f} +- {sd:.1f}"
    # and the afterpulse repeats the detector: detector 1 does not see detector 0's afterpulses
    hits1 = int(((cells[g + 1] & 2) != 0)[isolated].sum())
    p1 = np.mean((cells & 2) != 0)
    assert abs(hits1 - n_seeds * p1) <= Z * math.sqrt(n_seeds * p1 * (1 - p1))


def test_without_memory_equals_the_independent_engine_in_distribution():
    """p_ap = 0, no dead time: the stream tally and the pulse engine's tally are two samples of
    one multinomial law (chi-square homogeneity), and each matches the exact table."""
    link, prot = gys_link(0.0), decoy_protocol()
    n = 2**22
    ts = simulate_streams(jax.random.key(1), link, prot, n, n_streams=1024, chunk_gates=512, burn_in_gates=8)
    tp = simulate(jax.random.key(2), link, prot, jnp.int64(n), path="fast", chunk=2**20)
    a, b = np.asarray(ts.counts).ravel(), np.asarray(tp.counts).ravel()
    probs = np.asarray(prot.class_probabilities()[..., None] * exact.memoryless_table(link, prot)).ravel()
    keep = probs * n > 20  # cells with enough expected counts (the rest pooled)
    table = np.array([np.append(a[keep], a[~keep].sum()), np.append(b[keep], b[~keep].sum())])
    assert sps.chi2_contingency(table)[1] > 5.7e-7  # the z = 5 two-sided false-alarm level
    for counts in (a, b):
        obs = np.append(counts[keep], counts[~keep].sum())
        exp = np.append(probs[keep], probs[~keep].sum()) * n
        assert sps.chisquare(obs, exp * obs.sum() / exp.sum())[1] > 5.7e-7


@pytest.mark.slow  # 21 s on 2 cores
def test_numbers_do_not_depend_on_chunk_and_runs_are_prefixes():
    link, prot = gys_link(20.0), decoy_protocol()
    det = dataclasses.replace(link.detector, p_afterpulse=0.1, afterpulse_decay_gates=3.0, dead_time_gates=5.0)
    link = dataclasses.replace(link, detector=det)
    key = jax.random.key(11)
    kw = dict(n_streams=256, burn_in_gates=40)
    a = simulate_streams(key, link, prot, 100_000, chunk_gates=64, **kw)
    b = simulate_streams(key, link, prot, 100_000, chunk_gates=37, **kw)
    assert np.array_equal(np.asarray(a.counts), np.asarray(b.counts))
    assert int(a.n_pulses) == 100_000
    cells = np.asarray(sample_cells(key, link, prot, n_gates=391, **kw)).ravel()  # gate-major
    hist = np.bincount(cells[:100_000], minlength=a.counts.size)
    assert np.array_equal(hist, np.asarray(a.counts).ravel())
    engine = StreamEngine(n_pulses=100_000, n_streams=256, burn_in_gates=40, chunk_gates=64)
    assert np.array_equal(np.asarray(engine.tally(key, link, prot).counts), np.asarray(a.counts))
    for methods, unroll in [(("search_top", "onehot8"), 4), (("search", "split"), 1)]:  # kernels: same numbers
        c = simulate_streams(key, link, prot, 100_000, chunk_gates=64, methods=methods, unroll=unroll, **kw)
        assert np.array_equal(np.asarray(c.counts), np.asarray(a.counts)), methods


def test_validation():
    qmc.validate(StreamEngine())
    with pytest.raises(qmc.ValidationError, match="n_streams"):
        qmc.validate(StreamEngine(n_streams=6))
    with pytest.raises(qmc.ValidationError, match="p_afterpulse"):
        qmc.validate(ThresholdDetectors(p_afterpulse=1.0))
    with pytest.raises(qmc.ValidationError, match="dead_time_mode"):
        qmc.validate(ThresholdDetectors(dead_time_mode="both"))
    assert not ThresholdDetectors().has_memory() and ThresholdDetectors(dead_time_gates=2).has_memory()


def test_exact_approximation_is_the_identity_without_memory():
    link, prot = gys_link(30.0), decoy_protocol()
    assert np.array_equal(np.asarray(exact.outcome_table(link, prot)), np.asarray(exact.memoryless_table(link, prot)))


def test_exact_approximation_matches_the_observation_formula():
    """Table form and observation form (Lim et al. 2014, Sec. IV) of the (1 + p_ap) approximation."""
    link, prot = gys_link(30.0), decoy_protocol()
    p_ap = 0.04
    base = exact.observations(link, prot)
    det = dataclasses.replace(link.detector, p_afterpulse=p_ap)
    approx = exact.observations(dataclasses.replace(link, detector=det), prot)
    gain, error_gain = exact.afterpulse_observations(base.gain, base.error_gain, p_ap)
    np.testing.assert_allclose(approx.gain, gain, rtol=1e-12)
    np.testing.assert_allclose(approx.error_gain, error_gain, rtol=1e-12)


def _per_stream_gain(cells, k_class, k):
    """Matched-basis gain of intensity k per stream, and its batch-means stderr over streams."""
    cls = cells // 4
    kk, a, b = cls // 8, (cls // 4) % 2, (cls // 2) % 2
    sel = (kk == k) & (a == b)
    det = sel & (cells % 4 != 0)
    n_s, d_s = sel.sum(axis=0), det.sum(axis=0)
    gain = d_s.sum() / n_s.sum()
    resid = d_s - gain * n_s  # ratio estimator: batch means over independent streams
    se = math.sqrt(np.var(resid, ddof=1) * len(resid)) / n_s.sum()
    return gain, se


def test_usual_afterpulse_approximation_against_the_simulation():
    """The (1 + p_ap) approximation holds for the signal gain (to within 1 %), but misses that a
    signal's afterpulse lands in a pulse of any class: the simulated vacuum-decoy gain is many
    times the approximation's D_0 (1 + p_ap). Without afterpulsing the common dead-time factor
    is exact for every class."""
    prot = decoy_protocol()
    base = gys_link(0.0)
    key = jax.random.key(5)
    det = dataclasses.replace(base.detector, p_afterpulse=0.05, afterpulse_decay_gates=4.0)
    link = dataclasses.replace(base, detector=det)
    cells = np.asarray(sample_cells(key, link, prot, n_gates=2048, n_streams=2048, burn_in_gates=256))
    approx = exact.observations(link, prot).gain
    g_sig, se_sig = _per_stream_gain(cells, 24, 0)
    assert abs(g_sig - float(approx[0, 0])) <= 0.01 * float(approx[0, 0]) + Z * se_sig
    g_vac, _ = _per_stream_gain(cells, 24, 2)
    assert g_vac > 20 * float(approx[2, 0])
    # dead time alone (common): exact marginals, every class
    det = dataclasses.replace(base.detector, dead_time_gates=30.0)
    link = dataclasses.replace(base, detector=det)
    cells = np.asarray(sample_cells(key, link, prot, n_gates=2048, n_streams=2048, burn_in_gates=256))
    approx = exact.observations(link, prot).gain
    for k in range(2):
        g, se = _per_stream_gain(cells, 24, k)
        assert abs(g - float(approx[k, 0])) <= Z * se, (k, g, float(approx[k, 0]), se)


@pytest.mark.slow
def test_afterpulses_are_suppressed_by_dead_time_slow():
    """Common dead time d: nothing clicks in the d gates after a click, and traps released then
    are lost, so the first live gate j = d + 1 after an isolated click of detector 0 sees detector 0
    fire with 1 - (1 - p_dark)(1 - p_ap (1 - r) r^d) (no cascade or background click can precede it)."""
    p_ap, tau, p_dark, d, w = 0.3, 6.0, 0.002, 5, 80
    link = noise_link(p_dark, p_afterpulse=p_ap, afterpulse_decay_gates=tau, dead_time_gates=d)
    cells = np.asarray(sample_cells(jax.random.key(9), link, one_class_protocol(), n_gates=8192,
                                    n_streams=4096, burn_in_gates=512))
    any_click = (cells % 4 != 0).astype(np.int64)
    click0 = (cells & 1).astype(np.int64)
    csum = np.vstack([np.zeros((1, cells.shape[1]), np.int64), np.cumsum(any_click, axis=0)])
    g = np.arange(w, cells.shape[0] - d - 2)
    isolated = (click0[g] == 1) & (csum[g] - csum[g - w] == 0)
    n_seeds = int(isolated.sum())
    assert int((csum[g + d + 1] - csum[g + 1])[isolated].sum()) == 0  # gates 1 .. d are dead
    r = math.exp(-1 / tau)
    p = 1 - (1 - p_dark) * (1 - p_ap * (1 - r) * r**d)
    hits = int(click0[g + d + 1][isolated].sum())
    sd = math.sqrt(n_seeds * p * (1 - p))
    assert abs(hits - n_seeds * p) <= Z * sd, (hits, n_seeds * p, sd)
