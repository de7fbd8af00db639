"""Gradient optimization of protocol parameters (issue #7): qmc.optimize and study optimize_link.

Compiled programs are shared: one InfiniteDecoy optimizer (GYS optimum, random links against a
dense grid), one FiniteLim2014 optimizer (random links against the derivative-free search of
qmc.finite_study, the no-key point, the constraints, the block-engine check). The study runs
through the `qmc` config with its own (Lim, kappa) analysis.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qmc
from qmc import cli, optimize
from qmc import presets
from qmc.optimize.objective import value_and_grad as forward_value_and_grad
from qmc.protocols import DecoySpace
from qmc.studies import finite_optimize
from qmc._pytree import replace_path
from qmc.analysis import FiniteLim2014, FiniteRusca2018, InfiniteDecoy, VacuumWeak
from qmc.analysis.finite import AsymptoticTwoDecoy
from qmc.detectors import gys2004

LIM_PROTOCOL = qmc.DecoyBB84(intensities=(0.5, 0.1, 2e-4), probabilities=(0.7, 0.2, 0.1), p_z=0.9, key_basis="Z")
GYS_PROTOCOL = qmc.DecoyBB84(intensities=(0.3, 0.05, 0.0), probabilities=(1.0, 0.0, 0.0), p_z=0.5, key_basis="both")
FINITE = FiniteLim2014(f_ec=1.16, eps_cor=1e-15, kappa=1e-15, block_size=1e9)  # Lim's settings
N_LINKS = 8  # random links per batch: every batched test shares one compiled optimizer


def gys_link(length_km=0.0):
    return qmc.Link(qmc.WeakCoherentSource(), qmc.Fiber(length_km=length_km, loss_db_per_km=0.21), gys2004())


def stack(trees):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)


def random_links(seed, n=N_LINKS, click_model="ma2005", max_km=150.0):
    rng = np.random.default_rng(seed)
    links = []
    for _ in range(n):
        det = qmc.ThresholdDetectors(efficiency=rng.uniform(0.05, 0.9), p_dark=10 ** rng.uniform(-8, -5),
                                     misalignment=rng.uniform(0.005, 0.03), click_model=click_model)
        fiber = qmc.Fiber(length_km=rng.uniform(0.0, max_km), loss_db_per_km=rng.uniform(0.16, 0.25))
        links.append(qmc.Link(qmc.WeakCoherentSource(), fiber, det))
    return links


# ----------------------------------------------------------------------------------------------
# Reparameterization: every theta is a feasible protocol
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("space", [DecoySpace("decoys", True, True), DecoySpace("all", True, True),
                                   DecoySpace("signal")])
def test_every_theta_maps_onto_a_feasible_protocol(space):
    d = space.size(3)
    rng = np.random.default_rng(1)
    thetas = np.concatenate([rng.normal(0.0, 3.0, (300, d)), rng.uniform(-60.0, 60.0, (100, d))])
    protocols = jax.jit(jax.vmap(lambda t: space.to_protocol(t, LIM_PROTOCOL)))(thetas)
    mu = np.asarray(protocols.intensities)
    p = np.asarray(protocols.probabilities)
    p_z = np.asarray(protocols.p_z) * np.ones(len(thetas))
    assert np.all(np.diff(mu, axis=1) < 0) and np.all(mu[:, 0] > mu[:, 1] + mu[:, 2])  # Lim's rules
    assert np.all(mu[:, 2] > 0) if space.intensities == "all" else np.all(mu[:, 2] == 2e-4)
    assert np.all(p > 0) and np.allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert np.all((p_z > 0) & (p_z < 1))
    for i in range(0, len(thetas), 37):
        one = jax.tree_util.tree_map(lambda x: np.asarray(x)[i] if np.ndim(x) else x, protocols)
        qmc.validate(one)
        FINITE.validate_protocol(one)
    # from_protocol inverts to_protocol (numpy and jax versions agree)
    theta = space.from_protocol(LIM_PROTOCOL, np)
    np.testing.assert_allclose(theta, space.from_protocol(LIM_PROTOCOL))
    back = space.to_protocol(theta, LIM_PROTOCOL)
    np.testing.assert_allclose(back.intensities, LIM_PROTOCOL.intensities, rtol=1e-9)
    if space.probabilities:
        np.testing.assert_allclose(back.probabilities, LIM_PROTOCOL.probabilities, rtol=1e-9)
        assert float(back.p_z) == pytest.approx(0.9, rel=1e-9)


def test_default_space_frees_what_has_an_interior_optimum():
    assert optimize.default_space(FINITE, LIM_PROTOCOL) == DecoySpace("decoys", True, True)
    assert optimize.default_space(FiniteRusca2018(), LIM_PROTOCOL) == DecoySpace("all", True, True)
    for asym in (AsymptoticTwoDecoy(), InfiniteDecoy(), VacuumWeak()):
        assert optimize.default_space(asym, LIM_PROTOCOL) == DecoySpace("decoys" if asym.parameters[1:2] == ("decoys",) else "signal", True, True)
    assert optimize.default_space(FINITE, LIM_PROTOCOL).names(3) == ("mu1", "mu2", "p_mu1", "p_mu2", "p_mu3", "p_z")


# ----------------------------------------------------------------------------------------------
# Objectives: gradients against finite differences, finite everywhere
# ----------------------------------------------------------------------------------------------

OBJECTIVES = [
    ("infinite_decoy", InfiniteDecoy(f_ec=1.22), gys_link(60.0), GYS_PROTOCOL),
    ("vacuum_weak", VacuumWeak(f_ec=1.22), gys_link(60.0), GYS_PROTOCOL),
    ("asymptotic_two_decoy", AsymptoticTwoDecoy(), presets.lim2014_link(60.0), LIM_PROTOCOL),
    ("finite_lim2014", FINITE, presets.lim2014_link(60.0), LIM_PROTOCOL),
    ("finite_rusca2018", presets.lim2014_analysis("finite_rusca2018", 1e8), presets.lim2014_link(60.0),
     qmc.DecoyBB84(intensities=(0.5, 0.15), probabilities=(0.8, 0.2), p_z=0.85, key_basis="Z")),
]


@pytest.mark.parametrize("name,analysis,link,protocol", OBJECTIVES, ids=[o[0] for o in OBJECTIVES])
def test_objective_gradient_matches_finite_differences(name, analysis, link, protocol):
    space = optimize.default_space(analysis, protocol)
    theta = space.from_protocol(protocol, np) + 0.05  # an interior point off the start
    h = 1e-5
    steps = np.concatenate([np.eye(theta.size), -np.eye(theta.size)]) * h

    @jax.jit
    def evaluate(t):
        def f(x):
            return optimize.objective(x, link, protocol, analysis, space)
        value, grad = forward_value_and_grad(f, t.size)(t)  # the optimizer's gradient (forward mode)
        return value, grad, jax.vmap(f)(t[None, :] + steps)

    value, grad, shifted = evaluate(jnp.asarray(theta))
    assert value < 100.0, "the test point must have a key"
    fd = (shifted[: theta.size] - shifted[theta.size :]) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=2e-4, atol=1e-6 * max(1.0, np.abs(fd).max()))


def test_reverse_mode_gradient_agrees_with_forward_mode_and_is_finite_without_key():
    _, analysis, link, protocol = OBJECTIVES[2]  # asymptotic two-decoy: Lim's bounds, all branches
    space = DecoySpace("decoys", True, True)
    theta = space.from_protocol(protocol, np) + 0.05

    def f(x, length):
        return optimize.objective(x, replace_path(link, "channel.length_km", length), protocol, analysis, space)

    forward = jax.jit(lambda x, length: forward_value_and_grad(lambda y: f(y, length), x.size)(x))
    reverse = jax.jit(jax.value_and_grad(f))
    np.testing.assert_allclose(reverse(theta, 60.0)[1], forward(theta, 60.0)[1], rtol=1e-9, atol=1e-12)
    for length, t in [(400.0, theta), (0.0, theta + 40.0), (0.0, theta - 40.0), (150.0, np.zeros(5))]:
        for value, grad in (reverse(t, length), forward(t, length)):  # max(R, 0), H2(0): no NaN
            assert np.isfinite(value) and np.all(np.isfinite(grad)), (length, t)


def test_objective_is_finite_where_the_rate_is_clipped_at_zero():
    space = optimize.default_space(FINITE, LIM_PROTOCOL)

    @jax.jit
    def value_and_grad(t, length):
        link = replace_path(presets.lim2014_link(), "channel.length_km", length)
        return forward_value_and_grad(lambda x: optimize.objective(x, link, LIM_PROTOCOL, FINITE, space), 5)(t)

    theta = space.from_protocol(LIM_PROTOCOL, np)
    for length, t in [(300.0, theta), (0.0, theta + 40.0), (0.0, theta - 40.0), (150.0, np.zeros(5)),
                      (1000.0, theta)]:
        value, grad = value_and_grad(t, length)
        assert np.isfinite(value) and np.all(np.isfinite(grad)), (length, t)
    value, grad = value_and_grad(theta, 300.0)  # no key: above every feasible loss, pointing to a key
    assert value > 1000.0 and np.any(grad != 0.0)
    out = FINITE.key_rate(presets.lim2014_link(300.0), LIM_PROTOCOL)
    assert float(out.rate) == 0.0 and int(out.reason) != 0


def test_bounds_that_exceed_the_detections_give_no_key():
    # A degenerate but feasible corner (mu1 ~ mu2 + mu3, p_mu1 ~ 1e-22, p_z ~ 1e-14) where Lim's
    # s1 bound is rounding noise of size 1e41: capped at the detections, it claims no key.
    p = qmc.DecoyBB84(intensities=(4.130307243719511e-4, 2.1303072437195102e-4, 2e-4),
                      probabilities=(1.7190590945132908e-22, 0.055667366952392744, 0.9443326330476072),
                      p_z=1.741287620709925e-14, key_basis="Z")
    out = FiniteLim2014(block_size=1e9).key_rate(presets.lim2014_link(175.76), p)
    assert float(out.rate) == 0.0
    assert float(out.s0) + float(out.s1) <= float(out.n_key) * (1 + 1e-12)


# ----------------------------------------------------------------------------------------------
# Known optimum and a dense grid (asymptotic, one free intensity): one compiled optimizer
# ----------------------------------------------------------------------------------------------


def _grid_best(analysis, links, protocol, mus):
    """Dense-grid maximum of the rate over the signal intensity, per link: (rate, mu)."""
    def per_link(link):
        def at(mu):
            return analysis.key_rate(link, dataclasses.replace(protocol, intensities=jnp.stack(
                [mu, jnp.asarray(protocol.intensities)[1], jnp.asarray(protocol.intensities)[2]]))).rate
        rates = jax.vmap(at)(mus)
        return rates.max(), mus[jnp.argmax(rates)]
    return jax.jit(jax.vmap(per_link))(links)


@pytest.fixture(scope="module")
def gys_optimum():
    lengths = np.array([0.0, 20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 140.0])
    links = stack([gys_link(x) for x in lengths])
    return lengths, links, optimize.maximize(InfiniteDecoy(f_ec=1.22), links, GYS_PROTOCOL, batched=True)


def test_infinite_decoy_optimal_mu_at_gys_parameters_is_about_048(gys_optimum):
    lengths, links, opt = gys_optimum
    mu = np.asarray(opt.protocol.intensities)[:, 0]
    # Lo, Ma, Chen, PRL 94, 230504 (2005): mu_opt about 0.48 for GYS, nearly independent of length
    near = lengths <= 100.0
    assert np.all(np.abs(mu[near] - 0.48) < 0.015), mu
    assert np.all(np.asarray(opt.found)) and np.all(np.asarray(opt.rate.rate) > 0)
    grid_rate, grid_mu = _grid_best(InfiniteDecoy(f_ec=1.22), links, GYS_PROTOCOL, jnp.linspace(0.0501, 1.2, 4000))
    assert np.all(np.asarray(opt.rate.rate) >= np.asarray(grid_rate) * (1 - 1e-9))
    np.testing.assert_allclose(mu, grid_mu, atol=2e-3)


def test_matches_or_beats_a_dense_grid_on_random_links():
    analysis = InfiniteDecoy(f_ec=1.22)
    links = stack(random_links(seed=7))
    opt = optimize.maximize(analysis, links, GYS_PROTOCOL, batched=True)  # the compiled optimizer above
    grid_rate, _ = _grid_best(analysis, links, GYS_PROTOCOL, jnp.geomspace(0.0501, 2.0, 4000))
    rate = np.asarray(opt.rate.rate)
    assert np.all(grid_rate > 0)
    assert np.all(rate >= np.asarray(grid_rate) * (1 - 1e-9)), (rate, grid_rate)


# ----------------------------------------------------------------------------------------------
# Finite key: random links against the derivative-free search; no key; constraints; the check
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finite_random():
    """Random links and block sizes (plus one link with no key), optimized in one call."""
    rng = np.random.default_rng(3)
    links = random_links(seed=11, n=N_LINKS - 1, click_model="threshold", max_km=120.0)
    links.append(presets.lim2014_link(400.0))  # far beyond the key's reach
    blocks = 10 ** rng.uniform(6.0, 11.0, N_LINKS)
    paths = {"link.detector.efficiency": [float(l.detector.efficiency) for l in links],
             "link.detector.p_dark": [float(l.detector.p_dark) for l in links],
             "link.detector.misalignment": [float(l.detector.misalignment) for l in links],
             "link.channel.length_km": [float(l.channel.length_km) for l in links],
             "link.channel.loss_db_per_km": [float(l.channel.loss_db_per_km) for l in links],
             "analysis.block_size": list(blocks)}
    opt = optimize.maximize_sweep(FINITE, links[0], LIM_PROTOCOL, paths, chain_length=1, continuation=0,
                                  n_starts=4)
    return links, blocks, jax.tree_util.tree_map(np.asarray, opt)


def test_finite_key_matches_or_beats_the_derivative_free_search(finite_random):
    links, blocks, opt = finite_random
    for i in range(N_LINKS - 1):
        best, _ = finite_optimize.optimize_points(FINITE, links[i], [float(links[i].channel.length_km)], [blocks[i]],
                                     n_candidates=1024, n_rounds=6, chunk=1)
        assert opt.rate.rate[i] > 0
        # the search's region (p_z <= 0.9999, p_k >= 1e-4, mu1 <= 1) lies inside the optimizer's
        assert opt.rate.rate[i] >= float(best.rate[0]) * (1 - 1e-6), (i, opt.rate.rate[i], best.rate[0])


def test_no_key_returns_zero_and_says_so(finite_random):
    _, _, opt = finite_random
    assert not opt.found[-1] and opt.rate.rate[-1] == 0.0
    assert qmc.analysis.reason_text(int(opt.rate.reason[-1])) != "ok"
    assert np.all(np.isfinite(opt.theta)) and np.all(np.isfinite(opt.protocol.intensities))


def test_constraints_hold_at_every_returned_point(finite_random, gys_optimum):
    for opt, analysis, protocol in ((finite_random[2], FINITE, LIM_PROTOCOL),
                                    (gys_optimum[2], InfiniteDecoy(f_ec=1.22), GYS_PROTOCOL)):
        n = np.shape(opt.protocol.intensities)[0]
        for i in range(n):
            p = jax.tree_util.tree_map(lambda x: np.asarray(x)[i] if np.ndim(x) else x, opt.protocol)
            qmc.validate(p)
            if hasattr(analysis, "validate_protocol"):
                analysis.validate_protocol(p)
            assert p.key_basis == protocol.key_basis
            assert float(np.asarray(p.intensities)[-1]) == float(np.asarray(protocol.intensities)[-1])
        params = opt.parameters()
        assert set(params) == {"mu1", "mu2", "mu3", "p_mu1", "p_mu2", "p_mu3", "p_z"}


def test_block_engine_sessions_agree_with_the_optimum(finite_random):
    links, blocks, opt = finite_random
    for i in (0, 3):
        link = links[i]
        analysis = dataclasses.replace(FINITE, block_size=float(blocks[i]))
        protocol = jax.tree_util.tree_map(lambda x: np.asarray(x)[i] if np.ndim(x) else x, opt.protocol)
        if float(analysis.key_rate(link, protocol).n_pulses) >= 2.0**53:
            continue
        check = optimize.check_block_engine(jax.random.key(i), analysis, link, protocol, 400)
        assert bool(check["valid"]) and bool(check["agrees"]), {k: float(v) for k, v in check.items()}
        assert float(check["predicted"]) == pytest.approx(float(opt.rate.key_length[i]), rel=1e-9)


# ----------------------------------------------------------------------------------------------
# solver="optax": optax.lbfgs() (zoom line search) on the same loss, reparameterization and starts
# ----------------------------------------------------------------------------------------------


def test_optax_solver_finds_the_gys_optimum():
    analysis, link = InfiniteDecoy(f_ec=1.22), gys_link(50.0)
    opt = optimize.maximize(analysis, link, GYS_PROTOCOL, solver="optax", n_starts=1)  # one lane: less to compile
    mu = float(opt.protocol.intensities[0])
    assert abs(mu - 0.48) < 0.015, mu  # Lo, Ma, Chen (2005), as for the default solver
    assert bool(opt.found) and float(opt.rate.rate) > 0 and 1 < int(opt.n_eval) < 100


@pytest.mark.slow  # about 18 s on 2 cores: the device loop and optax's lbfgs compile their own programs
def test_optax_solver_agrees_with_bfgs_on_a_finite_key_point(finite_random):
    links, blocks, opt = finite_random  # the default solver's optima (four starts per point)
    i = 0
    analysis = dataclasses.replace(FINITE, block_size=float(blocks[i]))
    out = optimize.maximize(analysis, links[i], LIM_PROTOCOL, solver="optax", n_starts=1)
    assert bool(out.found) and opt.rate.rate[i] > 0
    assert float(out.rate.rate) == pytest.approx(float(opt.rate.rate[i]), rel=1e-6)
    FINITE.validate_protocol(out.protocol)
    assert out.parameters().keys() == opt.parameters().keys() and np.shape(out.theta) == np.shape(opt.theta[i])


def test_unknown_solver_or_option_is_refused():
    link = presets.lim2014_link(60.0)
    with pytest.raises(ValueError, match="solver = 'newton': not 'bfgs' nor a transformation of optax"):
        optimize.maximize(FINITE, link, LIM_PROTOCOL, solver="newton")
    with pytest.raises(ValueError, match="solver 'adam': .*learning_rate"):  # adam needs its learning rate
        optimize.maximize_sweep(FINITE, link, LIM_PROTOCOL, {"link.channel.length_km": [0.0, 10.0]}, solver="adam")
    with pytest.raises(ValueError, match="dtol"):  # an option of qmc's BFGS only
        optimize.maximize(FINITE, link, LIM_PROTOCOL, solver="lbfgs", dtol=1e-9)
    with pytest.raises(ValueError, match="loop = 'gpu': one of auto, host, device"):
        optimize.maximize(FINITE, link, LIM_PROTOCOL, loop="gpu")


@pytest.mark.slow  # 18 s on 2 cores
def test_host_and_device_loops_find_the_same_optima():
    # The same starts and rules (qmc.optimize.chains) in both drivers: the same evaluations and,
    # up to the rounding of one compiled loss against another, the same optima, along a sweep
    # with chains, exploration and continuation passes.
    lengths = np.linspace(0.0, 150.0, 6)
    args = (FINITE, presets.lim2014_link(0.0), LIM_PROTOCOL, {"link.channel.length_km": lengths})
    host = optimize.maximize_sweep(*args, loop="host", explore_every=2)
    device = optimize.maximize_sweep(*args, loop="device", explore_every=2)
    np.testing.assert_array_equal(np.asarray(host.n_eval), np.asarray(device.n_eval))
    np.testing.assert_allclose(np.asarray(host.rate.rate), np.asarray(device.rate.rate), rtol=1e-9)
    assert np.all(np.asarray(host.rate.rate) > 0)


def test_host_loop_compiles_once_for_any_batch_and_any_numbers():
    # The host loop's one program takes the point's numbers as arguments: other links, another
    # batch size, another block size reuse it.
    from qmc.optimize import host

    def links(n, km):
        return stack([presets.lim2014_link(x) for x in np.linspace(km, km + 40.0, n)])

    optimize.maximize(FINITE, links(6, 10.0), LIM_PROTOCOL, batched=True, n_starts=2, loop="host")
    compiled = host._step.cache_size()
    optimize.maximize(FINITE, links(7, 30.0), LIM_PROTOCOL, batched=True, n_starts=2, loop="host")
    optimize.maximize(dataclasses.replace(FINITE, block_size=1e8), presets.lim2014_link(80.0), LIM_PROTOCOL,
                      n_starts=2, loop="host")
    assert host._step.cache_size() == compiled


@pytest.mark.slow  # about 18 s on 2 cores: the device loop and optax's lbfgs compile their own programs
def test_device_loop_compiles_once_for_batches_of_nearby_sizes():
    # Batches are padded to a power of two of chains with copies of the last point: 6 and 7 links
    # share one program, and the padding changes no optimum.
    from qmc.optimize import continuation

    def links(n):
        return stack([presets.lim2014_link(x) for x in np.linspace(10.0, 130.0, n)])

    seven = optimize.maximize(FINITE, links(7), LIM_PROTOCOL, batched=True, n_starts=2, loop="device")
    compiled = continuation._solve.cache_size()
    six = optimize.maximize(FINITE, links(6), LIM_PROTOCOL, batched=True, n_starts=2, loop="device")
    assert continuation._solve.cache_size() == compiled
    assert np.shape(seven.rate.rate) == (7,) and np.shape(six.rate.rate) == (6,)
    assert [continuation.bucket(n) for n in (1, 2, 3, 5, 8, 9)] == [1, 2, 4, 8, 8, 16]
    for opt, n in ((seven, 7), (six, 6)):
        for i in (0, n - 1):
            one = optimize.maximize(FINITE, presets.lim2014_link(float(np.linspace(10.0, 130.0, n)[i])), LIM_PROTOCOL,
                                    n_starts=2, loop="device")
            np.testing.assert_allclose(float(opt.rate.rate[i]), float(one.rate.rate), rtol=1e-6)


@pytest.mark.slow  # 19 s on 2 cores
def test_any_optax_transformation_runs_by_name_or_as_an_object():
    import optax

    link = presets.lim2014_link(50.0)
    ref = optimize.maximize(FINITE, link, LIM_PROTOCOL, n_starts=1)
    for solver, options in (("adam", dict(learning_rate=0.05, max_eval=300)),
                            (optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.05)), dict(max_eval=300))):
        out = optimize.maximize(FINITE, link, LIM_PROTOCOL, n_starts=1, solver=solver, **options)
        assert float(out.rate.rate) == pytest.approx(float(ref.rate.rate), rel=1e-4), solver
        assert 1 < int(out.n_eval) <= 300


@pytest.mark.slow
def test_optax_sweep_matches_the_default_solver():
    from qmc.bench.optimize import cases

    analysis, link, protocol, space, lengths = cases(24)["finite_lim2014_1e9"]
    points = {"link.channel.length_km": lengths}
    ref = optimize.maximize_sweep(analysis, link, protocol, points, space)
    opt = optimize.maximize_sweep(analysis, link, protocol, points, space, solver="optax")
    rate, want = np.asarray(opt.rate.rate), np.asarray(ref.rate.rate)
    assert np.array_equal(np.asarray(opt.found), np.asarray(ref.found))
    # At the edge of the key (the last point with key, ~191 km) the warm start has no key and
    # optax's L-BFGS, with the same iteration budget, ends below the default solver's optimum.
    edge = np.flatnonzero(want > 0)[-1]
    others = np.arange(len(want)) != edge
    np.testing.assert_allclose(rate[others], want[others], rtol=1e-6)
    assert rate[edge] <= want[edge] * (1 + 1e-6)


# ----------------------------------------------------------------------------------------------
# Sweeps: continuation, and scipy on the same objective
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sweep_matches_or_beats_scipy_point_by_point():
    from qmc.bench.optimize import cases, compare, scipy_sweep

    for name, (analysis, link, protocol, space, lengths) in cases(24).items():
        opt = optimize.maximize_sweep(analysis, link, protocol, {"link.channel.length_km": lengths}, space)
        rates, _, _ = scipy_sweep(analysis, link, protocol, space, lengths)
        stats = compare(np.asarray(opt.rate.rate), rates)
        assert stats["min_rate_ratio_qmc_over_scipy"] >= 1 - 1e-3, (name, stats)


@pytest.mark.slow
def test_one_decoy_finite_key_optimum_beats_the_search():
    analysis = presets.lim2014_analysis("finite_rusca2018", 1e8)
    protocol = qmc.DecoyBB84(intensities=(0.5, 0.15), probabilities=(0.8, 0.2), p_z=0.85, key_basis="Z")
    lengths = np.array([0.0, 50.0, 100.0, 150.0])
    link = presets.lim2014_link()
    opt = optimize.maximize_sweep(analysis, link, protocol, {"link.channel.length_km": lengths})
    best, _ = finite_optimize.optimize_points(analysis, link, lengths, [1e8] * 4)
    assert np.all(np.asarray(opt.rate.rate) >= np.asarray(best.rate) * (1 - 1e-6))


# ----------------------------------------------------------------------------------------------
# Study optimize_link (the `qmc` command)
# ----------------------------------------------------------------------------------------------


def _prepare(*overrides):
    cfg = cli.compose("experiment=optimize_link", *overrides)
    return cli.prepare(cfg)


def test_optimize_link_config_validates_the_link_and_the_study_settings():
    study, spec, chunks = _prepare("channel.length_km=80", "detector=snspd", "analysis=finite_lim2014",
                                   "analysis.block_size=1e10")
    assert study.name == "optimize_link" and hasattr(chunks, "__next__")  # nothing compiled yet
    assert float(spec["detector"].efficiency) == 0.92 and list(spec["sweep"].axis("length_km")) == [80.0]
    for bad, message in (("optimize.n_starts=0", "optimize.n_starts"), ("check.n_sessions=-1", "check.n_sessions"),
                         ("protocol.key_basis=both", "key_basis"), ("sweep.length_km.values=[-5]", "length")):
        with pytest.raises(qmc.ValidationError, match=message):
            _prepare(bad)


def test_optimize_link_table_marks_fixed_parameters_and_gives_the_check():
    from qmc.studies.optimize_link import format_table, table_notes

    finite = dict(analysis="finite_lim2014", length_km=80.0, block_size=1e10, key_rate=0.003914,
                  key_rate_bps=3.914e6, reason="ok", free="mu1 mu2 p_mu1 p_mu2 p_mu3 p_z", mu1=0.6209, mu2=0.1449,
                  mu3=2e-4, p_mu1=0.869, p_mu2=0.07712, p_mu3=0.05392, p_z=0.9532, key_length=3.4083e9,
                  mc_key_length_median=3.4083e9, mc_agrees=True)
    asym = dict(finite, analysis="asymptotic_two_decoy", block_size=None, free="mu1", mu1=0.7123, mu2=0.1,
                p_mu1=0.7, p_mu2=0.2, p_mu3=0.1, p_z=0.9, key_length=0.00336, mc_key_length_median=None,
                mc_agrees=None)
    lines = format_table([finite, asym]).splitlines()
    assert lines[0].split()[:3] == ["analysis", "km", "block"] and set(lines[1]) == {"-"}
    assert "0.6209" in lines[2] and "0.6209*" not in lines[2] and "0.0002*" in lines[2]
    assert "1.00000 yes" in lines[2] and lines[3].split()[-2:] == ["-", "ok"] and "0.9*" in lines[3]
    assert all(line == line.rstrip() for line in lines)
    assert lines[4].startswith("* fixed") and lines[5].startswith("MC median/pred.") and len(lines) == 6
    assert len(format_table([asym], notes=False).splitlines()) == 3
    assert [n[:1] for n in table_notes([asym])] == ["*"]


@pytest.mark.slow
def test_optimize_link_study_prints_writes_and_checks(tmp_path, capsys):
    from qmc import studies
    from qmc.results import read_results

    study, spec, chunks = _prepare("channel.length_km=80", "detector=snspd", "analysis.block_size=1e10",
                                   "check.n_sessions=300")
    meta = studies.execute(study, chunks, tmp_path, progress=False)
    rows = read_results(tmp_path)
    assert meta["status"] == "complete" and [r["analysis"] for r in rows] == ["finite_lim2014", "asymptotic_two_decoy"]
    finite = rows[0]
    assert finite["key_rate"] > 0 and finite["reason"] == "ok" and finite["mc_agrees"] in (True, "true", 1.0)
    assert finite["key_rate"] > rows[1]["key_rate"] * 0.5
    assert not (tmp_path / "optimal_parameters_vs_distance.png").exists()  # one length: the table is the result
    assert meta["figures"] == [] and meta["figure_note"].startswith("one length")
    out = capsys.readouterr().out
    assert "finite_lim2014" in out and "p_z" in out and "MC median/pred." in out
