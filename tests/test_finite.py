"""Finite-key analyses (Lim et al. 2014, Rusca et al. 2018) and their studies.

Published statements reproduced here (with the paper's own system model, ``model="lim2014"``):
Lim et al., PRA 89, 022307 (2014), Sec. IV: at 100 km the rate with n_X = 1e9 is "about 1.75
times" the one with n_X = 1e7, and n_X = 1e4 still gives a key "over a fiber length of 135 km".
Rusca et al., APL 112, 171104 (2018), abstract: for blocks up to 1e8 the one-decoy protocol gives
higher rates than the two-decoy protocol in most settings, while asymptotically two decoys win.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qmc
from qmc import presets
from qmc.analysis.sessions import session_outcomes
from qmc.engines import Tally
from qmc.studies import finite_key, finite_optimize
from qmc.studies.one_vs_two_decoy import one_vs_two_decoy
from qmc._pytree import replace_path
from qmc.analysis import REASONS, Observations
from qmc.analysis.finite import (
    AsymptoticOneDecoy, AsymptoticTwoDecoy, DecoyCounts, FiniteKeyRate, FiniteLim2014, FiniteRusca2018,
)
from qmc.engines import exact
from qmc.gallery import published_points

PROT3 = qmc.DecoyBB84(intensities=(0.45, 0.15, 2e-4), probabilities=(0.6, 0.3, 0.1), p_z=0.85, key_basis="Z")
PROT2 = qmc.DecoyBB84(intensities=(0.45, 0.15), probabilities=(0.7, 0.3), p_z=0.85, key_basis="Z")
LINK50 = presets.lim2014_link(50.0)  # Lim's fiber and detectors, no afterpulsing (exact engine)

FAILED = {REASONS.index(t) for t in (
    "single-photon bound not positive",
    "phase-error bound undefined (logarithm argument below 1)",
    "finite-size terms exceed the key: key length not positive",
)}


def _leaves_finite(tree) -> bool:
    return all(not np.any(np.isnan(np.asarray(x))) for x in jax.tree_util.tree_leaves(tree))


# ----------------------------------------------------------------------------------------------
# Block size: finite rates rise toward the asymptotic rate and vanish for small blocks
# ----------------------------------------------------------------------------------------------


@jax.jit
def key_rate(analysis, link, protocol):
    """One compiled key rate per analysis class and protocol shape (eager calls compile op by op)."""
    return analysis.key_rate(link, protocol)


# d rate / d (link, protocol): one compile per analysis class, shared by all gradient checks.
rate_and_grad = jax.jit(jax.value_and_grad(lambda a, link, prot: a.key_rate(link, prot).rate, argnums=(1, 2)))


@jax.jit
def rates_from_counts(analysis, obs, protocol):
    """(rate with the pulse total of ``obs``, rate with the pulse total estimated from n_sent)."""
    return (analysis.key_rate_from_observations(obs, protocol),
            analysis.key_rate_from_observations(dataclasses.replace(obs, n_pulses=None), protocol))


@jax.jit
def rates_vs_block(analysis, link, protocol, blocks):
    return jax.vmap(lambda n: dataclasses.replace(analysis, block_size=n).key_rate(link, protocol))(blocks)


@pytest.mark.parametrize(
    "finite_cls, asym_cls, protocol",
    [(FiniteLim2014, AsymptoticTwoDecoy, PROT3), (FiniteRusca2018, AsymptoticOneDecoy, PROT2)],
)
@pytest.mark.parametrize("kappa", [0.0, 1e-15])
def test_rate_rises_to_asymptotic_and_vanishes_for_small_blocks(finite_cls, asym_cls, protocol, kappa):
    # Up to n_X = 1e12: beyond, eps_sec = kappa l exceeds 1e-3 and the sampling bound of Eq. (5)
    # leaves its domain (logarithm argument below 1: no key is claimed, see qmc.analysis.finite).
    blocks = jnp.geomspace(1e2, 1e12, 21)
    out = rates_vs_block(finite_cls(eps_sec=1e-10, kappa=kappa), LINK50, protocol, blocks)
    asym = float(key_rate(asym_cls(), LINK50, protocol).rate)
    r = np.asarray(out.rate)
    assert asym > 0
    # With fixed counts per pulse, the finite-size terms per pulse fall like 1/sqrt(n_X): the
    # rate can only grow with the block size (1e-12: rounding), and never exceeds the asymptote.
    assert np.all(np.diff(r) >= -1e-12 * asym)
    assert np.all(r <= asym * (1 + 1e-12))
    assert r[-1] == pytest.approx(asym, rel=2e-3)  # n_X = 1e12: corrections ~ 1e-3 relative
    assert r[0] == 0.0 and int(out.reason[0]) in FAILED  # n_X = 100: no key
    assert np.all(np.asarray(out.key_length)[r > 0] > 0)


# The default optimizer of the studies is the gradient one (qmc.optimize via
# finite_optimize.maximize_points); the derivative-free search (finite_optimize.optimize_points) is kept as a cross-check.
# Compiled programs are shared: every gradient call below has 48 points in chains of 16 (one
# FiniteLim2014, one FiniteRusca2018 and one AsymptoticTwoDecoy program on Lim's closed-form
# model), and so do the study tests of tests/test_finite_studies.py.
LENGTHS = np.arange(0.0, 301.0, 20.0)  # 16 lengths: one chain per block size
LIM_BLOCKS = [1e4, 1e7, 1e9]
RATIO_BLOCKS = np.geomspace(1e4, 1e12, 16)  # 16 block sizes: one chain per length
RATIO_LENGTHS = [50.0, 100.0, 150.0]
LIM_MODEL = dict(model="lim2014", p_afterpulse=presets.LIM2014["p_afterpulse"])
# One compiled search per analysis class for the cross-checks on the exact engine.
EXACT_KW = dict(n_candidates=512, n_rounds=4, chunk=4, model="exact", method="search")


def _lim2014_published() -> dict:
    """{quantity: row} of experiments/lim2014/published.csv (Lim Sec. IV); raises when it is missing."""
    rows = published_points("lim2014")
    if not rows:
        raise FileNotFoundError("experiments/lim2014/published.csv is missing or empty")
    return {row["quantity"]: row for row in rows}


LIM_PUBLISHED = _lim2014_published()


@pytest.fixture(scope="module")
def lim_curves():
    """Lim's Fig. 1 on his system model (afterpulsing), the studies' default path: rows by
    (analysis, block size, length), maximum distances to 0.5 km."""
    analyses = {"finite_lim2014": presets.lim2014_analysis(), "asymptotic_two_decoy": AsymptoticTwoDecoy(f_ec=1.16)}
    chunks = finite_key.finite_key_curves(presets.lim2014_link(), analyses, LENGTHS, LIM_BLOCKS, **LIM_MODEL)
    rows = [row for chunk in chunks for row in chunk.rows]
    return {(r["analysis"], r["block_size"], r["length_km"]): r for r in rows}


@pytest.fixture(scope="module")
def ratios():
    """One decoy over two decoys on Lim's system, without and with his afterpulsing model:
    {p_ap: {(length, block): row}}."""
    out = {}
    for p_ap in (0.0, presets.LIM2014["p_afterpulse"]):
        rows = one_vs_two_decoy(presets.lim2014_link(), RATIO_LENGTHS, RATIO_BLOCKS, model="lim2014", p_afterpulse=p_ap)
        out[p_ap] = {(r["length_km"], r["block_size"]): r for r in rows}
    return out


def test_optimized_finite_rates_approach_optimized_asymptotic_rate(lim_curves):
    for length in (0.0, 60.0, 100.0):
        r = [lim_curves["finite_lim2014", n, length]["key_rate"] for n in LIM_BLOCKS]
        a = lim_curves["asymptotic_two_decoy", math.inf, length]["key_rate"]
        assert 0 < r[0] < r[1] < r[2] < a
    # qmc at 100 km: r / a = 0.006, 0.29, 0.52 (n_X = 1e4, 1e7, 1e9)
    r4, r9, a = (lim_curves[k]["key_rate"] for k in (("finite_lim2014", 1e4, 100.0), ("finite_lim2014", 1e9, 100.0),
                                                     ("asymptotic_two_decoy", math.inf, 100.0)))
    assert r9 > 0.45 * a and r4 < 0.02 * a


# ----------------------------------------------------------------------------------------------
# Lim et al. 2014: published statements, on the paper's system model (afterpulsing included)
# ----------------------------------------------------------------------------------------------


def test_lim2014_rate_ratio_at_100_km(lim_curves):
    r9, r7 = lim_curves["finite_lim2014", 1e9, 100.0], lim_curves["finite_lim2014", 1e7, 100.0]
    ratio = r9["key_rate"] / r7["key_rate"]
    # Published: "about 1.75" (Sec. IV; experiments/lim2014/published.csv). qmc gives 1.791
    # (gradient optimizer and random search alike); the tolerance of the CSV (5 %) covers the
    # reading of "about" and unprinted details of the paper's numerics. Without afterpulsing
    # (p_ap = 0) the ratio would be 1.62: the test sees the model.
    published = LIM_PUBLISHED["key_rate_ratio"]
    assert published["x"] == 100.0 and published["series"] == "finite_lim2014 n_X=1e9 / n_X=1e7"
    assert abs(ratio - published["value"]) <= published["tolerance"], (ratio, published["value"])
    assert ratio == pytest.approx(1.791, rel=2e-3)
    # eps_sec = kappa l with kappa = 1e-15 (Lim Sec. IV)
    assert r9["eps_sec"] == pytest.approx(1e-15 * r9["key_length"], rel=1e-3)
    assert r9["mu3"] == 2e-4 and r9["reason"] == "ok" and r9["model"] == "lim2014"


def test_lim2014_maximum_distance(lim_curves):
    d = {n: lim_curves["finite_lim2014", n, 0.0]["max_distance_km"] for n in LIM_BLOCKS}
    d_asym = lim_curves["asymptotic_two_decoy", math.inf, 0.0]["max_distance_km"]
    # Published: n_X = 1e4 "can still" reach 135 km (experiments/lim2014/published.csv). qmc:
    # 130.1 km with eps_sec = 1e-15 l as the text says (3.6 % short; the random search with 8
    # times more candidates finds the same edge, so it is not the optimizer), 134.9 km with a
    # fixed eps_sec = 1e-10. The CSV's tolerance (7 %): the edge moves by several km with the
    # eps_sec convention, which the figure does not pin down.
    published = LIM_PUBLISHED["max_distance_km"]
    assert published["series"] == "finite_lim2014 n_X=10000"
    assert abs(d[1e4] - published["value"]) <= published["tolerance"], (d[1e4], published["value"])
    assert d[1e4] == pytest.approx(130.1, abs=0.6)  # to 0.5 km: the study's tolerance
    # qmc: 178.7 km (1e7), 184.2 km (1e9), 188.0 km asymptotically (Fig. 1: the curves approach
    # the dashed asymptotic one)
    assert d[1e4] < d[1e7] < d[1e9] < d_asym < 195.0
    assert d[1e9] == pytest.approx(184.0, abs=1.0) and d_asym == pytest.approx(188.0, abs=1.0)
    # the edge: a key just inside, none 1 km beyond (the maximum distance is a property of the curve)
    for n in LIM_BLOCKS:
        assert all(lim_curves["finite_lim2014", n, length]["key_rate"] > 0 for length in LENGTHS if length < d[n])
        assert all(lim_curves["finite_lim2014", n, length]["key_rate"] == 0 for length in LENGTHS if length > d[n] + 1)


def test_gradient_optimizer_matches_or_beats_the_derivative_free_search(lim_curves):
    # Cross-check at the reproduction points (100 km) and near the n_X = 1e4 edge (120 km):
    # the search's region lies inside the optimizer's, so its rates cannot be higher.
    analysis, link = presets.lim2014_analysis(), presets.lim2014_link()
    points = [(1e9, 100.0), (1e7, 100.0), (1e4, 100.0), (1e4, 120.0)]
    best, _ = finite_optimize.optimize_points(analysis, link, [p[1] for p in points], [p[0] for p in points], chunk=4,
                                 n_candidates=1024, n_rounds=6, **LIM_MODEL)
    for (n, length), rate in zip(points, best.rate):
        assert rate > 0
        assert lim_curves["finite_lim2014", n, length]["key_rate"] >= rate * (1 - 1e-9), (n, length)


@pytest.mark.slow
def test_lim2014_printed_error_model_does_not_reproduce():
    # e_k printed with eta_ch instead of eta_sys (Sec. IV): the optical error becomes 10x larger.
    link = presets.lim2014_link()
    d = finite_optimize.max_distance_km(link, [1e4, 1e9], tol_km=2.0, model="lim2014_as_printed",
                           p_afterpulse=presets.LIM2014["p_afterpulse"])
    assert d[0] < 60.0 and d[1] < 160.0  # far from 135 km and from Fig. 1


@pytest.mark.slow
def test_maximum_distance_bisection_with_the_search_agrees():
    # max_distance_km on its own (grid + multi-section) against the search's bisection.
    link = presets.lim2014_link()
    grad = finite_optimize.max_distance_km(link, [1e4, 1e9], tol_km=0.5, **LIM_MODEL)
    search = finite_optimize.max_distance_km(link, [1e4, 1e9], tol_km=0.5, method="search", chunk=2, **LIM_MODEL)
    assert np.all(grad >= search - 0.5) and np.all(np.abs(grad - search) < 1.5), (grad, search)


@pytest.mark.slow
def test_search_fallback_where_the_phase_error_bound_is_undefined():
    # n_X = 1e14, 1e15 with eps_sec = kappa l (0.03-0.1): the key lives in a thin shell at the edge
    # of the phase-error bound's domain, where the gradient optimizer's loss gives no direction.
    link, blocks = presets.lim2014_link(), [1e12, 1e14, 1e15]
    plain, _ = finite_optimize.maximize_points(presets.lim2014_analysis(), link, [50.0] * 3, blocks, chain_length=3, fallback=False,
                                  **LIM_MODEL)
    best, theta = finite_optimize.maximize_points(presets.lim2014_analysis(), link, [50.0] * 3, blocks, chain_length=3, **LIM_MODEL)
    search, _ = finite_optimize.optimize_points(presets.lim2014_analysis(), link, [50.0] * 3, blocks, chunk=3, **LIM_MODEL)
    assert plain.rate[0] > 0 and best.rate[0] == plain.rate[0]  # points with a key are left alone
    assert np.all(best.rate > 0) and np.all(best.found) and np.all(np.isfinite(theta))
    assert np.all(best.rate >= 0.999 * search.rate)
    assert best.parameters["mu3"][2] == 2e-4


# ----------------------------------------------------------------------------------------------
# Rusca et al. 2018: one decoy beats two decoys for practical blocks, not asymptotically
# ----------------------------------------------------------------------------------------------


def test_rusca2018_one_decoy_wins_for_practical_blocks_but_not_asymptotically(ratios):
    # Lim's system without afterpulsing (his closed-form model, p_ap = 0; the exact engine gives
    # the same ratios to 1e-3). qmc: 1.01-1.03 at n_X = 1e4, 1.26-1.29 at its peak (~3e5),
    # 1.18-1.19 at 1e8, 1.03-1.04 at 1e12; the published statement is qualitative.
    none = ratios[0.0]
    for length in RATIO_LENGTHS[:2]:
        r = np.array([none[length, n]["ratio"] for n in RATIO_BLOCKS])
        assert np.all(r > 1.0), r
        assert np.all(r[(RATIO_BLOCKS >= 1e5) & (RATIO_BLOCKS <= 1e8)] > 1.1)
        peak = RATIO_BLOCKS[np.argmax(r)]
        assert 3e4 < peak < 3e6 and 1.2 < r.max() < 1.4
        assert r[-1] < r.max()  # the advantage shrinks toward large blocks
    link = presets.lim2014_link()  # exact engine, cheap search: asymptotically the vacuum decoy wins (qmc: 0.93)
    kw = dict(EXACT_KW)
    kw.pop("method")
    one, _ = finite_optimize.optimize_points(AsymptoticOneDecoy(), link, [50.0, 100.0, 50.0, 100.0], [1.0] * 4, **kw)
    two, _ = finite_optimize.optimize_points(AsymptoticTwoDecoy(), link, [50.0, 100.0, 50.0, 100.0], [1.0] * 4, **kw)
    assert np.all(one.rate < two.rate)


def test_afterpulsing_reverses_the_comparison_like_a_larger_error_rate(ratios):
    # With Lim's afterpulsing model (errors p_ap D_k / 2, QBER 2.4 %) two decoys win at every
    # block size (qmc: 0.24-0.40 at n_X = 1e4, at most 0.94 near 1e7). The model is a system with
    # a larger error rate: the one-decoy bounds count every error of the decoy as vacuum (the
    # upper bound on s_0, Rusca Eq. (A16)) and take the single-photon errors from a secant over
    # [mu2, mu1] (Eq. (A22)), both growing with the error rate (see the README).
    after = ratios[presets.LIM2014["p_afterpulse"]]
    for length in RATIO_LENGTHS[:2]:
        r = np.array([after[length, n]["ratio"] for n in RATIO_BLOCKS])
        assert np.all(r < 1.0) and r[0] < 0.5 and 0.85 < r.max() < 0.97, r
        assert all(after[length, n]["rate_two_decoy"] < ratios[0.0][length, n]["rate_two_decoy"] for n in RATIO_BLOCKS)


# ----------------------------------------------------------------------------------------------
# No NaN anywhere (hypothesis), gradients, observed counts, validation
# ----------------------------------------------------------------------------------------------


def _build(x):
    """Link, protocols and analyses from a tuple of valid parameters (fixed shapes and dtypes, so
    every example reuses the compiled functions above)."""
    (length, eff, log_dark, mis, mu1, f2, f3, p1, p2, pz, log_n, log_eps, use_kappa) = (
        np.float64(v) for v in x)
    link = qmc.Link(qmc.WeakCoherentSource(), qmc.Fiber(length_km=length),
                    qmc.ThresholdDetectors(eff, 10.0**log_dark, mis))
    mu3 = 0.45 * mu1 * f2 * f3  # then mu1 - 2 mu3 >= 0.1 mu1, so mu1 > mu2 + mu3 > 2 mu3
    mu2 = mu3 + (mu1 - 2.0 * mu3) * f2 * 0.98
    prot3 = qmc.DecoyBB84((mu1, mu2, mu3), (p1, (1.0 - p1) * p2, (1.0 - p1) * (1.0 - p2)), pz, "Z")
    prot2 = qmc.DecoyBB84((mu1, mu2), (p1, 1.0 - p1), pz, "Z")
    common = dict(eps_sec=10.0**log_eps, eps_cor=1e-15, block_size=10.0**log_n,
                  kappa=1e-15 if use_kappa > 0.5 else 0.0)
    return link, prot3, prot2, FiniteLim2014(**common), FiniteRusca2018(**common)


_params = st.tuples(
    st.floats(0.0, 300.0),  # length_km
    st.floats(0.0, 1.0),  # efficiency (0: no detections)
    st.floats(-12.0, -2.0),  # log10 p_dark
    st.floats(0.0, 0.5),  # misalignment
    st.floats(1e-3, 2.0),  # mu1
    st.floats(0.01, 1.0),  # mu2 share
    st.floats(0.0, 1.0),  # mu3 share (0: vacuum)
    st.floats(0.01, 0.99), st.floats(0.01, 0.99),  # probabilities
    st.floats(0.01, 0.99),  # p_z
    st.floats(0.0, 14.0),  # log10 block size
    st.floats(-20.0, -1.0),  # log10 eps_sec
    st.floats(0.0, 1.0),  # kappa on/off
)


@pytest.mark.slow  # 21 s on 2 cores
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_params)
def test_no_nan_on_random_valid_parameters(values):
    link, prot3, prot2, lim, rusca = _build(values)
    for obj in (link, prot3, prot2, lim, rusca):
        qmc.validate(obj)
    lim.validate_protocol(prot3)
    rusca.validate_protocol(prot2)
    cases = [(lim, prot3), (rusca, prot2), (AsymptoticTwoDecoy(), prot3), (AsymptoticOneDecoy(), prot2)]
    for analysis, protocol in cases:
        out = key_rate(analysis, link, protocol)
        assert _leaves_finite(out)
        assert float(out.rate) >= 0.0 and math.isfinite(float(out.rate))
        assert (float(out.rate) > 0) == (int(out.reason) == 0)
    for analysis, protocol in cases[:2]:
        _, grads = rate_and_grad(analysis, link, protocol)
        assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grads))


def test_no_nan_at_degenerate_and_invalid_points():
    # Inside a sweep an invalid point gives rate 0 and a reason, never NaN (values or gradients).
    lim = FiniteLim2014(block_size=1e6)
    dark = qmc.Link(detector=qmc.ThresholdDetectors(efficiency=0.0, p_dark=0.0, misalignment=0.0))
    out = key_rate(lim, dark, PROT3)
    assert float(out.rate) == 0.0 and REASONS[int(out.reason)] == "no detections" and _leaves_finite(out)
    assert _leaves_finite(rate_and_grad(lim, dark, PROT3))
    # No errors at all (p_dark = 0, e_d = 0, mu3 vacuum): the phase-error term at b = 0
    vac = dataclasses.replace(PROT3, intensities=np.asarray([0.45, 0.15, 0.0]))
    clean = qmc.Link(detector=qmc.ThresholdDetectors(0.1, 0.0, 0.0))
    out = key_rate(lim, clean, vac)
    assert _leaves_finite(out) and float(out.rate) > 0
    assert _leaves_finite(rate_and_grad(lim, clean, vac))
    bad = [
        dataclasses.replace(PROT3, probabilities=np.asarray([0.9, 0.1, 0.0])),  # p_k = 0
        dataclasses.replace(PROT3, p_z=1.0),  # no test basis
        dataclasses.replace(PROT3, intensities=np.asarray([0.2, 0.15, 0.1])),  # mu1 < mu2 + mu3
    ]
    for prot in bad:
        out = key_rate(lim, LINK50, prot)
        assert float(out.rate) == 0.0 and REASONS[int(out.reason)] == "invalid parameters"
        assert _leaves_finite(out) and _leaves_finite(rate_and_grad(lim, LINK50, prot))
    for analysis in (dataclasses.replace(lim, eps_sec=0.0), dataclasses.replace(lim, block_size=-1.0)):
        out = key_rate(analysis, LINK50, PROT3)
        assert float(out.rate) == 0.0 and _leaves_finite(out)


@pytest.mark.parametrize("analysis, protocol", [
    (FiniteLim2014(block_size=1e7, eps_sec=1e-10), PROT3),
    (FiniteLim2014(block_size=1e7, kappa=1e-15), PROT3),
    (FiniteRusca2018(block_size=1e7, eps_sec=1e-10), PROT2),
])
def test_gradient_matches_finite_differences(analysis, protocol):
    # Interior point (positive rate, every bound away from its guard): d rate / d (mu1, mu2, p_z,
    # p_mu1, length) against central differences (steps small against each parameter's scale).
    rate0, (g_link, g_prot) = rate_and_grad(analysis, LINK50, protocol)
    assert float(rate0) > 0
    k = protocol.n_intensities
    shift = np.zeros(k)
    shift[0], shift[-1] = 1.0, -1.0  # move weight from the last intensity to the signal: sum stays 1
    # (name, (link, protocol) perturbed by t, step, analytic derivative along that direction)
    mu, probs = np.asarray(protocol.intensities), np.asarray(protocol.probabilities)
    cases = [
        ("mu1", lambda t: (LINK50, replace_path(protocol, "intensities.0", mu[0] + t)), 1e-5,
         g_prot.intensities[0]),
        ("mu2", lambda t: (LINK50, replace_path(protocol, "intensities.1", mu[1] + t)), 1e-5,
         g_prot.intensities[1]),
        ("p_z", lambda t: (LINK50, dataclasses.replace(protocol, p_z=protocol.p_z + t)), 1e-6, g_prot.p_z),
        ("p_mu1", lambda t: (LINK50, dataclasses.replace(protocol, probabilities=probs + t * shift)), 1e-6,
         np.dot(np.asarray(g_prot.probabilities), shift)),
        ("length", lambda t: (replace_path(LINK50, "channel.length_km", 50.0 + t), protocol), 1e-4,
         g_link.channel.length_km),
    ]
    for name, at, h, g in cases:
        fd = (key_rate(analysis, *at(h)).rate - key_rate(analysis, *at(-h)).rate) / (2 * h)
        # central differences: truncation ~ h^2 |f'''| and rounding ~ 1e-16 |f| / h stay below 1e-6
        assert float(g) == pytest.approx(float(fd), rel=1e-5, abs=1e-9 * float(rate0)), name


@pytest.mark.parametrize("analysis, protocol", [
    (FiniteLim2014(block_size=1e6, kappa=1e-15), PROT3),
    (FiniteRusca2018(block_size=1e6, eps_sec=1e-9), PROT2),
])
def test_observed_counts_match_expected_counts(analysis, protocol):
    # A Tally with exactly the expected counts gives exactly the expected-count rate: this is the
    # path Monte Carlo tallies take (Observations.from_counts -> key_rate_from_observations).
    expected = key_rate(analysis, LINK50, protocol)
    n_pulses = float(expected.n_pulses)
    pb = np.asarray([protocol.p_z, 1.0 - protocol.p_z])
    sent = n_pulses * np.einsum("k,a,b,x->kabx", np.asarray(protocol.probabilities), pb, pb, np.full(2, 0.5))
    counts = np.asarray(exact.outcome_table(LINK50, protocol)) * sent[..., None]  # (k, 2, 2, 2, 4)
    obs = Observations.from_counts(counts, sent)
    observed, estimated = rates_from_counts(analysis, obs, protocol)
    assert float(observed.rate) == pytest.approx(float(expected.rate), rel=1e-9)
    assert float(observed.n_key) == pytest.approx(float(analysis.block_size), rel=1e-9)
    # Without the pulse total, it is estimated from the matched-basis pulses (exact here).
    assert float(estimated.n_pulses) == pytest.approx(n_pulses, rel=1e-9)


def test_kappa_fixed_point_and_security_terms():
    out = key_rate(FiniteLim2014(block_size=1e8, kappa=1e-15), LINK50, PROT3)
    assert float(out.eps_sec) == pytest.approx(1e-15 * float(out.key_length), rel=1e-12)
    fixed = key_rate(FiniteLim2014(block_size=1e8, eps_sec=float(out.eps_sec)), LINK50, PROT3)
    assert float(fixed.key_length) == pytest.approx(float(out.key_length), rel=1e-9)
    assert isinstance(out, FiniteKeyRate) and isinstance(out, qmc.KeyRate)
    # Counts scale with the block: N = n_X / P(key-basis detection)
    counts = DecoyCounts.expected(exact.observations(LINK50, PROT3), PROT3, 1e8)
    assert float(jnp.sum(counts.detections[:, 0])) == pytest.approx(1e8)
    assert float(out.n_pulses) == pytest.approx(float(counts.n_pulses))


def _with(protocol, **fields):
    return dataclasses.replace(protocol, **{k: np.asarray(v) for k, v in fields.items()})


@pytest.mark.parametrize("analysis, protocol, text", [
    (FiniteLim2014(), _with(PROT3, intensities=[0.3, 0.2, 0.15]), "mu1 > mu2 + mu3"),
    (FiniteLim2014(), _with(PROT3, intensities=[0.5, 0.1, 0.1]), "mu2 > mu3 >= 0"),
    (FiniteLim2014(), PROT2, "needs 3 intensities"),
    (FiniteLim2014(), dataclasses.replace(PROT3, key_basis="both"), "key_basis 'Z'"),
    (FiniteLim2014(), _with(PROT3, probabilities=[0.9, 0.1, 0.0]), "probability > 0"),
    (FiniteLim2014(), dataclasses.replace(PROT3, p_z=1.0), "0 < p_z < 1"),
    (FiniteRusca2018(), _with(PROT2, intensities=[0.5, 0.0]), "mu1 > mu2 > 0"),
    (AsymptoticTwoDecoy(), _with(PROT3, intensities=[0.3, 0.2, 0.15]), "mu1 > mu2 + mu3"),
])
def test_intensity_constraints_are_validated(analysis, protocol, text):
    with pytest.raises(qmc.ValidationError, match="protocol.") as err:
        analysis.validate_protocol(protocol)
    assert text in str(err.value) and analysis.name in str(err.value)
    if protocol.n_intensities == analysis.n_intensities and protocol.key_basis == "Z":
        assert float(key_rate(analysis, LINK50, protocol).rate) == 0.0  # traced: rate 0


def test_analysis_checks_and_registry():
    for name in ("finite_lim2014", "finite_rusca2018", "asymptotic_two_decoy", "asymptotic_one_decoy"):
        assert qmc.ANALYSES[name].name == name
    with pytest.raises(qmc.ValidationError, match="eps_sec"):
        qmc.validate(FiniteLim2014(eps_sec=0.0))
    with pytest.raises(qmc.ValidationError, match="block_size"):
        qmc.validate(FiniteRusca2018(block_size=0.0))
    qmc.validate(FiniteLim2014())
    FiniteLim2014().validate_protocol(PROT3)
    FiniteRusca2018().validate_protocol(PROT2)


def test_study_rows_have_the_documented_columns():
    rows = finite_key.finite_key_vs_distance(LINK50, [0.0, 20.0, 40.0, 60.0], [1e6], **EXACT_KW)  # the search
    assert [r["block_size"] for r in rows] == [1e6] * 4 + [math.inf] * 4
    for key in ("length_km", "block_size", "key_rate", "mu1", "mu2", "mu3", "p_mu1", "p_mu2", "p_mu3", "p_z"):
        assert key in rows[0]
    assert rows[0]["key_rate"] > 0 and rows[0]["reason"] == "ok"
    prot = qmc.DecoyBB84.from_parameters(rows[0])
    qmc.validate(prot)
    FiniteLim2014().validate_protocol(prot)


def test_monte_carlo_sessions_through_the_same_analysis():
    # Fixed-N sessions drawn with numpy (stand-in for the block engine's Tallies): the mean key
    # length agrees with the expected-count key length within 5 standard errors (the bounds are
    # smooth in the counts, so the Jensen bias is far below the error: qmc 0.3 sigma at S = 400).
    analysis = FiniteLim2014(block_size=1e7, kappa=1e-15)
    reference = key_rate(analysis, LINK50, PROT3)
    n_pulses = int(float(reference.n_pulses))
    pb = np.asarray([PROT3.p_z, 1.0 - PROT3.p_z])
    class_p = np.einsum("k,a,b,x->kabx", np.asarray(PROT3.probabilities), pb, pb, np.full(2, 0.5))
    table = np.asarray(exact.outcome_table(LINK50, PROT3)).reshape(-1, 4)
    rng = np.random.default_rng(6)
    sessions = 200
    sent = rng.multinomial(n_pulses, class_p.ravel(), size=sessions)  # (S, classes)
    counts = np.stack([[rng.multinomial(n, p) for n, p in zip(row, table)] for row in sent])
    tally = Tally(jnp.asarray(counts.reshape((sessions,) + class_p.shape + (4,)), jnp.int64))
    res = session_outcomes(analysis, PROT3, tally)
    assert not res["abort"].any()
    assert np.all(res["n_pulses"] == n_pulses)
    mean, sd = res["key_length"].mean(), res["key_length"].std()
    assert abs(mean - float(reference.key_length)) < 5 * sd / math.sqrt(sessions)
    # a phase-error tolerance below every session's bound aborts them all
    strict = session_outcomes(analysis, PROT3, tally, phase_error_tolerance=1e-3)
    assert strict["abort"].all() and np.all(strict["key_length"] == 0)


def test_kappa_solve_finds_the_largest_fixed_point_and_its_implicit_derivative():
    # A toy key length l = F(eps) = a - b ln(1/eps), increasing in eps like Eq. (1): the fixed point
    # l = F(kappa l) has two roots; the iteration from above must find the larger one, and the
    # derivative in a must be the implicit one, 1 / (1 - F'(l) kappa) with F' kappa = b / l.
    from qmc.analysis import kappa as solver

    b, kappa = 40.0, 1e-15

    def fixed_point(a):
        def length_of(eps):
            return a - b * jnp.log(1.0 / eps), ()
        return solver.solve(length_of, solver.proportional(kappa, 1e-10, True), 1e6)

    for a in (2000.0, 1450.0):  # far from and close to the tangency (largest distance)
        length, eps, converged, _ = fixed_point(a)
        l = float(length)
        assert bool(converged) and abs(l - (a - b * math.log(1.0 / (kappa * l)))) <= 1e-9 * l
        assert float(eps) == pytest.approx(kappa * l, rel=1e-12) and l > b  # the larger root: F' kappa < 1
        slope = float(jax.grad(lambda a: fixed_point(a)[0])(a))
        assert slope == pytest.approx(1.0 / (1.0 - b / l), rel=1e-6)
    length, _, converged, _ = fixed_point(1000.0)  # no root: no key
    assert bool(converged) and float(length) <= 0.0


def test_every_key_of_the_lim_study_is_consistent_with_its_eps_sec():
    # eps_sec = kappa l holds to 1e-9 wherever a key is claimed, next to the largest distances
    # too (the iteration runs to convergence; where it cannot, no key is claimed).
    link = presets.lim2014_link(0.0)
    analysis = FiniteLim2014(f_ec=1.16, eps_cor=1e-15, kappa=1e-15, block_size=1e4)
    lengths = np.array([100.0, 140.0, 146.0, 147.5, 148.0, 148.2, 148.3, 149.0, 152.0])  # edge: 148.3 km
    opt = qmc.optimize.maximize_sweep(analysis, link, PROT3, {"link.channel.length_km": lengths})
    rate = np.asarray(opt.rate.rate)
    keyed = rate > 0
    assert keyed[0] and not keyed[-1]  # the edge lies inside the sweep
    length, eps = np.asarray(opt.rate.key_length)[keyed], np.asarray(opt.rate.eps_sec)[keyed]
    assert np.all(eps <= 1e-15 * length * (1.0 + 1e-9))
