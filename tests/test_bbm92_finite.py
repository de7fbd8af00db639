"""BBM92's finite-key rate (qmc.analysis.BBM92Finite: Tomamichel, Lim, Gisin, Renner, Nat. Commun. 3,
634 (2012), Eq. (2)) and the gradient optimizer on BBM92 (qmc.protocols.BBM92Space).

How the checks are derived:

* Convergence. l / N = p_z^2 Q_Z [1 - h(E_X + mu) - f h(E_Z)] - s / N, s = log2(2/(eps_sec^2
  eps_cor)), so the gap to the asymptotic rate (same p_z, key basis Z) is, to first order in mu,
  (n h'(E_X) mu + s) / N with mu ~ N^(-1/2): the relative gap shrinks like 1/sqrt(N). h is concave,
  so the first order is an upper bound of the gap, and the second order takes off at most
  n |h''(E_X)| mu^2 / 2 (|h''| falls on [E_X, E_X + mu]): a relative deficit of at most
  |h''(E_X)| mu / (2 h'(E_X)), which the test computes and allows: nothing is tuned.
* Optimizer against grid. Both maximize the same rate over log10 mu; the grid
  (qmc.entanglement.optimal_key_rate) resolves log10 mu to about 1e-6, BFGS stops at a gradient of
  -ln R below 1e-7: both lose less than 1e-10 of ln R. So the rates agree to 1e-9 (relative), and
  near the maximum, ln R = ln R* - c (d log10 mu)^2 / 2, the optima agree to sqrt(2e-9 / c) in
  log10 mu, c measured by a finite difference.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qmc
from qmc import optimize
from qmc.analysis import REASONS, BBM92Asymptotic, BBM92Finite
from qmc.analysis.bbm92_finite import statistical_deviation
from qmc.engines import exact
from qmc.engines.cells import cell_observations
from qmc.entanglement import PairSource, TwoArmLink, gain_and_qber, optimal_key_rate
from qmc.protocols import BBM92
from qmc.protocols.bbm92 import BBM92Space

F_EC = 1.16
LINK = TwoArmLink.gys2004(50.0, PairSource(mean_pair_number=0.05))
KEY_Z = BBM92(p_z=0.8, key_basis="Z")


def _h(x):
    return -x * np.log2(x) - (1 - x) * np.log2(1 - x)


@jax.jit
def _key_rate(analysis, link, protocol):  # one program per analysis structure, shared by the tests
    return analysis.key_rate(link, protocol)


def _rate(analysis, link=LINK, protocol=KEY_Z):
    return _key_rate(analysis, link, protocol)


def test_the_finite_rate_tends_to_the_asymptotic_rate_like_one_over_sqrt_n():
    asymptotic = float(BBM92Asymptotic(f_ec=F_EC).key_rate(LINK, KEY_Z).rate)
    _, qber = (np.asarray(v) for v in gain_and_qber(LINK.table()))
    e_x = float(qber[1])
    h1 = math.log2((1 - e_x) / e_x)  # h'(E_X)
    h2 = 1.0 / (e_x * (1 - e_x) * math.log(2))  # |h''(E_X)|
    security = math.log2(2 / (1e-10**2 * 1e-15))
    gaps = {}
    for n_pulses in (1e12, 1e14, 1e16):
        out = _rate(BBM92Finite(f_ec=F_EC, n_pulses=n_pulses))
        assert int(out.reason) == 0
        mu = float(out.deviation)
        first_order = (float(out.n_key) * h1 * mu + security) / n_pulses
        gap = asymptotic - float(out.rate)
        deficit = h2 * mu / (2 * h1)
        assert first_order * (1 - deficit) <= gap <= first_order, (n_pulses, gap, first_order)
        gaps[n_pulses] = gap / asymptotic
    # the relative gap falls tenfold per hundredfold N (to the same second-order allowance)
    for small, large in ((1e12, 1e14), (1e14, 1e16)):
        assert gaps[small] / gaps[large] == pytest.approx(10.0, rel=0.05)
    assert gaps[1e14] < 0.02  # within a few % at N = 1e14 (0.97 %)


def test_block_size_and_n_pulses_describe_the_same_block():
    by_pulses = _rate(BBM92Finite(f_ec=F_EC, n_pulses=1e12))
    by_bits = _rate(BBM92Finite(f_ec=F_EC, block_size=float(by_pulses.n_key)))
    assert float(by_bits.n_pulses) == pytest.approx(1e12, rel=1e-12)
    assert float(by_bits.rate) == pytest.approx(float(by_pulses.rate), rel=1e-10)
    # k / n = ((1 - p_z) / p_z)^2 Q_X / Q_Z: the test bits of the biased basis choice
    gain, _ = gain_and_qber(LINK.table())
    assert float(by_pulses.n_test / by_pulses.n_key) == pytest.approx(0.0625 * float(gain[1] / gain[0]), rel=1e-12)


def test_the_key_length_against_an_independent_numpy_computation():
    n_pulses, eps_sec, eps_cor = 1e11, 1e-9, 1e-12
    out = _rate(BBM92Finite(f_ec=F_EC, eps_sec=eps_sec, eps_cor=eps_cor, n_pulses=n_pulses))
    gain, qber = (np.asarray(v, float) for v in gain_and_qber(LINK.table()))
    n = n_pulses * 0.8**2 * gain[0]
    k = n_pulses * 0.2**2 * gain[1]
    mu = np.sqrt((n + k) / (n * k) * (k + 1) / k * np.log(2 / eps_sec))
    length = n * (1 - _h(qber[1] + mu)) - F_EC * n * _h(qber[0]) - np.log2(2 / (eps_sec**2 * eps_cor))
    assert float(out.deviation) == pytest.approx(mu, rel=1e-12)
    assert float(out.key_length) == pytest.approx(length, rel=1e-9)
    assert float(out.rate) == pytest.approx(length / n_pulses, rel=1e-9)


@pytest.mark.parametrize("n, k, eps", [(1e4, 1e3, 1e-10), (1e9, 2.5e7, 1e-6), (1e15, 1e15, 1e-15), (3.0, 1.0, 0.5)])
def test_mu_against_numpy(n, k, eps):
    want = np.sqrt((n + k) / (n * k) * (k + 1) / k * np.log(2 / eps))
    assert float(statistical_deviation(n, k, eps)) == pytest.approx(want, rel=1e-13)
    assert float(statistical_deviation(0.0, k, eps)) == np.inf


def test_the_rate_rises_with_eps_sec():
    rates = [float(_rate(BBM92Finite(f_ec=F_EC, eps_sec=eps, n_pulses=1e10)).rate)
             for eps in (1e-15, 1e-12, 1e-9, 1e-6, 1e-3)]
    assert rates[0] > 0 and np.all(np.diff(rates) > 0), rates


@pytest.mark.parametrize("case, reason", [
    ("tiny block", "finite-size terms exceed the key: key length not positive"),
    ("long distance", "error rate too high: key rate not positive"),
    ("blind detectors", "no detections"),
])
def test_zero_not_nan_where_the_bound_gives_nothing(case, reason):
    link, analysis = LINK, BBM92Finite(f_ec=F_EC, n_pulses=1e12)
    if case == "tiny block":
        analysis = BBM92Finite(f_ec=F_EC, n_pulses=1e6)
    elif case == "long distance":
        link = dataclasses.replace(LINK, length_km=400.0)
        assert float(BBM92Asymptotic(f_ec=F_EC).key_rate(link, KEY_Z).rate) == 0.0
    else:
        link = dataclasses.replace(LINK, efficiency_a=0.0, p_dark_a=0.0)
    out = _rate(analysis, link)
    assert float(out.rate) == 0.0 and REASONS[int(out.reason)] == reason
    leaves = jax.tree_util.tree_leaves(out)
    assert not any(np.isnan(np.asarray(x, float)).any() for x in leaves)
    # the optimizer's loss and its gradient stay finite there too
    space = BBM92Space(p_z=True)
    grad = jax.grad(lambda t: optimize.objective(t, link, KEY_Z, analysis, space))(space.from_protocol(KEY_Z))
    assert np.all(np.isfinite(np.asarray(grad)))


def test_counted_observations_read_like_expected_ones():
    n_pulses = 1e12
    cells = n_pulses * exact.joint_probabilities(LINK, KEY_Z)
    obs = cell_observations(cells, KEY_Z.reduction(), n_pulses)
    counted = BBM92Finite(f_ec=F_EC).key_rate_from_observations(obs, KEY_Z)
    expected = _rate(BBM92Finite(f_ec=F_EC, n_pulses=n_pulses))
    for name in ("rate", "n_key", "n_test", "deviation", "key_length"):
        assert float(getattr(counted, name)) == pytest.approx(float(getattr(expected, name)), rel=1e-10), name


@pytest.mark.parametrize("field, value, message", [
    ("eps_sec", 0.0, "eps_sec = 0 is out of range: must be in (0, 1)"),
    ("eps_cor", 1.5, "eps_cor = 1.5 is out of range: must be in (0, 1)"),
    ("f_ec", 0.9, "f_ec = 0.9 is out of range: must be >= 1"),
    ("block_size", -1.0, "block_size = -1 is out of range: must be > 0"),
    ("n_pulses", 0.0, "n_pulses = 0 is out of range: must be > 0"),
])
def test_bad_values_get_one_line_errors(field, value, message):
    with pytest.raises(qmc.ValidationError) as err:
        qmc.validate(BBM92Finite(**{field: value}), "analysis.")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_key_from_both_bases_is_refused_and_gives_rate_zero_when_traced():
    with pytest.raises(qmc.ValidationError, match="bbm92_finite needs key_basis 'Z'"):
        BBM92Finite().validate_protocol(BBM92())
    out = _rate(BBM92Finite(n_pulses=1e12), protocol=BBM92(p_z=0.8))
    assert float(out.rate) == 0.0 and REASONS[int(out.reason)] == "invalid parameters"


# ---------------------------------------------------------------------------------------------
# The gradient optimizer on BBM92
# ---------------------------------------------------------------------------------------------


def test_the_space_frees_what_the_analysis_reads_and_round_trips():
    assert BBM92().parameter_space(BBM92Asymptotic()).names() == ("mean_pair_number",)
    assert BBM92().parameter_space(BBM92Finite()).names() == ("mean_pair_number", "p_z")
    space = BBM92Space(p_z=True)
    protocol = BBM92(p_z=0.9, mean_pair_number=0.02, key_basis="Z")
    back = space.to_protocol(space.from_protocol(protocol), protocol)
    assert float(back.mean_pair_number) == pytest.approx(0.02, rel=1e-12)
    assert float(back.p_z) == pytest.approx(0.9, rel=1e-12)
    starts = space.starting_points(protocol, 8)
    assert starts.shape == (8, 2) and np.all(np.isfinite(starts))
    lo, hi = space.box()
    assert np.all(lo < hi)


@pytest.mark.parametrize("length_km", [50.0, 200.0])
def test_the_gradient_optimum_of_the_mean_pair_number_matches_the_grid(length_km):
    link = dataclasses.replace(LINK, length_km=length_km)
    analysis = BBM92Asymptotic(f_ec=F_EC)
    opt = optimize.maximize(analysis, link, BBM92())
    rates = jax.jit(jax.vmap(lambda x: analysis.key_rate(link, BBM92(mean_pair_number=10.0**x)).rate))
    x, step = fine_grid_maximum(rates)
    grid_rate = float(rates(jnp.asarray([x]))[0])
    assert bool(opt.found) and float(opt.rate.rate) == pytest.approx(grid_rate, rel=1e-9)
    # curvature c of ln R in log10 mu at the grid's optimum (central difference, step 0.01)
    log_rate = np.log(np.asarray(rates(jnp.asarray([x - 0.01, x, x + 0.01]))))
    c = -(log_rate[0] - 2 * log_rate[1] + log_rate[2]) / 0.01**2
    assert c > 0
    tol = math.sqrt(2e-9 / c) + step / 2
    assert abs(math.log10(float(opt.protocol.mean_pair_number)) - x) < tol
    # qmc.entanglement.optimal_key_rate (the study's grid) resolves log10 mu to 0.1 / 4^3 / 2
    _, study_mu = jax.jit(lambda l: optimal_key_rate(l, F_EC, 0.5))(link)
    assert abs(math.log10(float(study_mu)) - x) < 0.1 / 4**3 / 2 + step


def fine_grid_maximum(rates, lo=-5.0, hi=0.5):
    """(log10 mu, final spacing): a 0.01 grid, then four rounds of 21 points over +-1 spacing."""
    grid = np.linspace(lo, hi, 551)
    step = grid[1] - grid[0]
    best = grid[int(np.argmax(np.asarray(rates(jnp.asarray(grid)))))]
    for _ in range(4):
        grid = best + np.linspace(-step, step, 21)
        step = grid[1] - grid[0]
        best = grid[int(np.argmax(np.asarray(rates(jnp.asarray(grid)))))]
    return float(best), float(step)


def test_the_finite_analysis_runs_through_the_optimizer():
    analysis = BBM92Finite(f_ec=F_EC, n_pulses=1e12)
    start = BBM92(key_basis="Z")  # p_z = 1/2, the source's mean pair number
    opt = optimize.maximize(analysis, LINK, start)
    assert bool(opt.found) and set(opt.parameters()) == {"mean_pair_number", "p_z"}
    p_z, mu = float(opt.protocol.p_z), float(opt.protocol.mean_pair_number)
    assert 0.5 < p_z < 0.99  # biased toward the key basis, with test bits left
    best = float(opt.rate.rate)
    # no point of a grid around it is better (beyond the optimizer's 1e-9 of ln R)
    grid = [BBM92(p_z=p, mean_pair_number=m, key_basis="Z") for p in p_z + np.array([-0.02, 0.0, 0.02])
            for m in mu * np.array([0.8, 1.0, 1.25])]
    rates = jax.vmap(lambda p: analysis.key_rate(LINK, p).rate)(jax.tree_util.tree_map(lambda *x: jnp.stack(x), *grid))
    assert best >= float(jnp.max(rates)) * (1 - 1e-9)
    assert best > float(_rate(analysis, protocol=dataclasses.replace(start, mean_pair_number=0.05)).rate)
