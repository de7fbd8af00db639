"""Purification (qmc.repeaters.purification) and elementary links that purify in the chain Monte
Carlo: the maps against the published recurrences and a density-matrix circuit, the Monte Carlo
against closed forms (z = 5, fixed keys), memories per node, and the refusals of bad settings."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qmc  # noqa: F401  (float64)
from qmc.repeaters import Chain, Memory, chains_vs, estimate_chains, sample_chains, states
from qmc.repeaters import closed_forms as cf
from qmc.repeaters import purification as pu
from qmc.repeaters.estimate import delivered_correlations
from qmc.repeaters.montecarlo import ChainSamples
from qmc.repeaters.reference import numpy_purifying_chains
from qmc.studies.repeaters import repeater_chain
from qmc.validation import ValidationError, validate

KEY = jax.random.key(2027)
Z = 5.0

# --- the maps -------------------------------------------------------------------------------------

_I, _X = np.eye(2), np.array([[0, 1], [1, 0]])
_PAULI = [_I, _X, np.array([[0, -1j], [1j, 0]]), np.diag([1.0, -1.0])]
_PHI = np.array([1, 0, 0, 1]) / math.sqrt(2)
_BASIS = [np.kron(_I, P) @ _PHI for P in _PAULI]  # Phi+, Psi+, Psi-, Phi-: states.py's order


def _kron(*ops):
    out = ops[0]
    for o in ops[1:]:
        out = np.kron(out, o)
    return out


def _circuit(lam1, lam2, rotate):
    """Bilateral CNOT (pair 1 on pair 2), target measured in Z, kept when the outcomes agree; with
    ``rotate`` Alice's qubits first get R_x(pi/2) and Bob's R_x(-pi/2) (DEJMPS). Qubits a1 b1 a2 b2."""
    rho = np.kron(*(sum(w * np.outer(v, v.conj()) for w, v in zip(lam, _BASIS)) for lam in (lam1, lam2)))
    if rotate:
        rx = lambda t: math.cos(t / 2) * _I - 1j * math.sin(t / 2) * _X  # noqa: E731
        u = _kron(rx(math.pi / 2), rx(-math.pi / 2), rx(math.pi / 2), rx(-math.pi / 2))
        rho = u @ rho @ u.conj().T
    p0, p1 = np.diag([1.0, 0.0]), np.diag([0.0, 1.0])
    cnot = lambda c, t: _kron(*[p0 if i == c else _I for i in range(4)]) + _kron(  # noqa: E731
        *[p1 if i == c else _X if i == t else _I for i in range(4)])
    g = cnot(0, 2) @ cnot(1, 3)
    keep = _kron(_I, _I, p0, p0) + _kron(_I, _I, p1, p1)
    rho = keep @ g @ rho @ g.conj().T @ keep
    n = float(np.real(np.trace(rho)))
    kept = np.einsum("abcdefcd->abef", rho.reshape([2] * 8)).reshape(4, 4) / n
    return np.real([v.conj() @ kept @ v for v in _BASIS]), n


def test_bbpssw_recurrence_fixed_points_and_gain():
    f = jnp.linspace(0.25, 1.0, 301)
    f1, n = pu.bbpssw(f)
    e = (1 - f) / 3
    np.testing.assert_allclose(f1, (f**2 + e**2) / (f**2 + 2 * f * (1 - f) / 3 + 5 * e**2), rtol=1e-14)
    np.testing.assert_allclose(n, f**2 + 2 * f * (1 - f) / 3 + 5 * e**2, rtol=1e-14)
    assert float(pu.bbpssw(0.5)[0]) == pytest.approx(0.5, abs=1e-15)
    assert float(pu.bbpssw(1.0)[0]) == 1.0 and float(pu.bbpssw(1.0)[1]) == 1.0
    inside = (f > 0.5) & (f < 1.0)
    assert np.all(np.asarray(f1)[inside] > np.asarray(f)[inside])
    assert np.all((np.asarray(n) >= 0) & (np.asarray(n) <= 1))


def test_bbpssw_is_the_bilateral_cnot_on_werner_pairs():
    for f1, f2 in ((0.9, 0.9), (0.8, 0.95)):
        werner = lambda f: np.asarray(states.bell_coefficients(states.werner(f)))  # noqa: E731
        lam, n = _circuit(werner(f1), werner(f2), rotate=False)
        f_out, n_out = pu.bbpssw_pair(f1, f2)
        assert lam[0] == pytest.approx(float(f_out), rel=1e-12) and n == pytest.approx(float(n_out), rel=1e-12)


def test_dejmps_is_the_published_recurrence_and_the_circuit():
    lam1, lam2 = np.array([0.8, 0.1, 0.06, 0.04]), np.array([0.7, 0.05, 0.1, 0.15])  # Phi+, Psi+, Psi-, Phi-
    lam, n = _circuit(lam1, lam2, rotate=True)
    out, n_out = pu.dejmps_pair(lam1, lam2)
    np.testing.assert_allclose(np.asarray(out), lam, atol=1e-12)
    assert float(n_out) == pytest.approx(n, rel=1e-12)
    a, c, b, d = lam1  # the paper's A = Phi+, B = Psi-, C = Psi+, D = Phi-
    norm = (a + b) ** 2 + (c + d) ** 2
    out, n_out = pu.dejmps(lam1)
    np.testing.assert_allclose(np.asarray(out), np.array([a * a + b * b, c * c + d * d, 2 * c * d, 2 * a * b]) / norm,
                               rtol=1e-14)
    assert float(n_out) == pytest.approx(norm, rel=1e-14)


def test_dejmps_gains_more_than_bbpssw_in_two_rounds():
    for f in (0.6, 0.75, 0.9):
        f_b = pu.bbpssw(pu.bbpssw(f)[0])[0]
        lam = pu.dejmps(pu.dejmps(states.bell_coefficients(states.werner(f)))[0])[0]
        assert float(lam[0]) > float(f_b) > f
        assert float(pu.dejmps(states.bell_coefficients(states.werner(f)))[0][0]) == pytest.approx(
            float(pu.bbpssw(f)[0]), rel=1e-14)  # one round on Werner pairs: the same fidelity


def test_maps_keep_the_trace_and_probabilities_in_range_under_jit_and_vmap():
    rng = np.random.default_rng(3)
    lam1, lam2 = rng.dirichlet(np.ones(4), 500), rng.dirichlet(np.ones(4), 500)
    c1, c2 = states.correlations(jnp.asarray(lam1)), states.correlations(jnp.asarray(lam2))
    for method in pu.METHODS:
        c, n = jax.jit(jax.vmap(lambda x, y, m=method: pu.purify(x, y, m)))(c1, c2)
        lam = np.asarray(states.bell_coefficients(c))
        np.testing.assert_allclose(lam.sum(axis=-1), 1.0, rtol=1e-13)
        assert np.all(lam >= -1e-15) and np.all((np.asarray(n) > 0) & (np.asarray(n) <= 1))


# --- the Monte Carlo ------------------------------------------------------------------------------

def _link(p, f, method, **kw):
    return Chain(n_links=kw.pop("n_links", 1), p_link=p, link_fidelity=f, memories_per_node=2, purification=method,
                 **kw)


@pytest.mark.parametrize("method, p", [("bbpssw", 0.2), ("dejmps", 0.05)])
def test_purifying_link_waits_max_of_two_geometrics_over_success(method, p):
    f = 0.85
    r = estimate_chains(KEY, _link(p, f, method), Memory(), 100_000)
    mean, fidelity = cf.purified_link(p, f, method)
    assert (3 - 2 * p) / (p * (2 - p)) / float(pu.bbpssw(f)[1]) == pytest.approx(mean, rel=1e-12)
    assert abs(float(r["mean_attempts"]) - mean) < Z * float(r["mean_attempts_stderr"])
    assert float(r["fidelity"]) == pytest.approx(fidelity, rel=1e-12)  # perfect memories: every pair the same
    assert int(r["n_delivered"]) == 100_000


def test_purifying_link_with_decaying_memories():
    p, f = 0.1, 0.93
    chain = _link(p, f, "dejmps", length_km=50.0)
    tau = float(chain.attempt_time_s())
    memory = Memory(t_depolarizing_s=40 * tau, t_dephasing_s=15 * tau)
    r = estimate_chains(KEY, chain, memory, 100_000)
    x_dep, x_deph = math.exp(-2 / 40), math.exp(-2 / 15)  # per round, both qubits
    mean, fidelity = cf.purified_link(p, f, "dejmps", x_dep, x_deph)
    assert fidelity < cf.purified_link(p, f, "dejmps")[1] - 0.01  # the wait matters at this size
    assert abs(float(r["mean_attempts"]) - mean) < Z * float(r["mean_attempts_stderr"])
    assert abs(float(r["fidelity"]) - fidelity) < Z * float(r["fidelity_stderr"])


@pytest.mark.parametrize("method", pu.METHODS)
def test_pumping_rounds_against_the_renewal_equations(method):
    p, f = 0.3, 0.8
    r = estimate_chains(KEY, _link(p, f, method, purification_rounds=3), Memory(), 50_000)
    mean, c = cf.pumped_link(p, f, method, 3)
    assert abs(float(r["mean_attempts"]) - mean) < Z * float(r["mean_attempts_stderr"])
    assert float(r["fidelity"]) == pytest.approx(float(states.fidelity(c)), rel=1e-12)


def test_purified_links_multiply_over_the_chain():
    p, f = 0.2, 0.9
    c, _ = pu.purify(states.werner(f), states.werner(f), "dejmps")
    for n_links in (2, 4):
        r = estimate_chains(KEY, _link(p, f, "dejmps", n_links=n_links), Memory(), 2000)
        assert float(r["fidelity"]) == pytest.approx(float(states.fidelity(c**n_links)), rel=1e-12)
        assert int(r["n_delivered"]) == 2000


@pytest.mark.parametrize("method, n_links, policy, rounds, cut", [
    pytest.param("dejmps", 4, "nested", 2, 10, marks=pytest.mark.slow),  # 8 s: pumping, cutoff and nesting together
    ("bbpssw", 3, "asap", 1, None),
])
def test_kernel_agrees_with_the_round_by_round_reference(method, n_links, policy, rounds, cut):
    """Swap failures, a cutoff and decaying memories with purifying links: the event-driven kernel
    against the model stepped round by round in numpy (maps written out separately there)."""
    p, f, q = 0.2, 0.9, 0.7
    chain = _link(p, f, method, n_links=n_links, policy=policy, purification_rounds=rounds, swap_probability=q,
                  length_km=10.0 * n_links)
    tau = float(chain.attempt_time_s())
    memory = Memory(t_dephasing_s=20 * tau, t_depolarizing_s=60 * tau, cutoff_s=None if cut is None else (cut + 0.5) * tau)
    s = sample_chains(KEY, chain, memory, 20_000)
    a, sto, cor = numpy_purifying_chains(np.random.default_rng(1), 2000, n_links, p, f, method, rounds, q,
                                         math.exp(-2 / 60), math.exp(-2 / 20), cut, policy)
    fidelity = lambda x: np.asarray(states.fidelity(delivered_correlations(x, chain, memory)))  # noqa: E731
    pairs = [(np.asarray(s.attempts), a), (np.asarray(s.storage_rounds), sto),
             (fidelity(s), fidelity(ChainSamples(a, sto, n_links, cor)))]
    for x, y in pairs:
        se = math.hypot(x.std() / math.sqrt(len(x)), y.std() / math.sqrt(len(y)))
        assert abs(x.mean() - y.mean()) < Z * se


def test_parallel_memories_without_purification():
    p = 0.1
    p2 = 1 - (1 - p) ** 2
    for n_links, exact in ((1, 1 / p2), (2, cf.two_link_attempts(p2))):
        chain = Chain(n_links=n_links, p_link=p, link_fidelity=1.0, memories_per_node=2)
        a = np.asarray(sample_chains(KEY, chain, Memory(), 50_000).attempts)
        assert abs(a.mean() - exact) < Z * a.std(ddof=1) / math.sqrt(a.size)


def test_sweep_with_purification_has_sensible_rows():
    tree = {"chain": _link(None, None, "dejmps", n_links=2, swap_probability=0.5, herald_fidelity=0.95),
            "memory": Memory(t_dephasing_s=1.0)}
    plain = {"chain": Chain(n_links=2, swap_probability=0.5, herald_fidelity=0.95), "memory": Memory(t_dephasing_s=1.0)}
    lengths = np.array([[50.0], [150.0]])
    r = chains_vs(KEY, tree, ("chain.length_km",), lengths, 2000)
    r0 = chains_vs(KEY, plain, ("chain.length_km",), lengths, 2000)
    for name, value in r.items():
        assert not np.any(np.isnan(np.asarray(value))), name
    assert np.all(np.asarray(r["fidelity"]) > np.asarray(r0["fidelity"]))  # purer pairs ...
    assert np.all(np.asarray(r["rate_pairs_per_s"]) < np.asarray(r0["rate_pairs_per_s"]))  # ... fewer of them


def test_bad_settings_are_refused_naming_the_field():
    with pytest.raises(ValidationError, match=r"chain.purification = 'bbpsw': must be one of null, bbpssw, dejmps"):
        validate(Chain(purification="bbpsw", memories_per_node=2), "chain.")
    with pytest.raises(ValidationError, match=r"chain.memories_per_node = 0 is out of range: must be a whole number >= 1"):
        validate(Chain(memories_per_node=0), "chain.")
    with pytest.raises(ValidationError, match=r"chain.purification = dejmps: needs chain.memories_per_node = 2 \(got 1\)"):
        validate(Chain(purification="dejmps"), "chain.")
    with pytest.raises(ValidationError, match=r"chain.purification_rounds = 0 is out of range"):
        validate(Chain(purification="bbpssw", memories_per_node=2, purification_rounds=0), "chain.")
    with pytest.raises(ValidationError, match=r"chain.purification = 'x'"):  # the study refuses before compiling
        repeater_chain(KEY, Chain(purification="x"), Memory(), [100.0], [2])
    validate(_link(0.1, 0.9, "bbpssw", purification_rounds=2), "chain.")
    validate(Chain(memories_per_node=4), "chain.")
