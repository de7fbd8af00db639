"""Repeater chains: the Monte Carlo against closed forms (z = 5, fixed keys), the Bell-diagonal
algebra against density matrices, and the numpy reference against the JAX kernel."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qmc  # noqa: F401  (float64)
from qmc.repeaters import Chain, Memory, chains_vs, estimate_chains, sample_chains, states
from qmc.repeaters import closed_forms as cf
from qmc.repeaters.reference import numpy_chains
from qmc.validation import ValidationError, validate

KEY = jax.random.key(2026)
Z = 5.0


def _attempts(chain, memory=None, n=100_000, key=KEY):
    memory = Memory() if memory is None else memory
    a = np.asarray(sample_chains(key, chain, memory, n).attempts)
    assert (a > 0).all()
    return a.mean(), a.std(ddof=1) / math.sqrt(len(a))


@pytest.mark.parametrize("p", [0.3, 0.05])
def test_two_links_wait_for_the_later_of_two_geometric_numbers(p):
    mean, se = _attempts(Chain(n_links=2, p_link=p, link_fidelity=1.0))
    assert abs(mean - cf.two_link_attempts(p)) < Z * se


@pytest.mark.parametrize("n_links, policy", [(1, "asap"), (3, "asap"), (4, "asap"), (4, "nested"), (8, "nested")])
def test_n_links_wait_for_the_latest_of_n_geometric_numbers(n_links, policy):
    p = 0.1
    mean, se = _attempts(Chain(n_links=n_links, p_link=p, link_fidelity=1.0, policy=policy))
    assert abs(mean - cf.n_link_attempts(p, n_links)) < Z * se


def test_swap_failures_and_memory_efficiency_renew_the_two_link_chain():
    chain = Chain(n_links=2, p_link=0.2, link_fidelity=1.0, swap_probability=0.5)
    mean, se = _attempts(chain, Memory(efficiency=0.8))
    assert abs(mean - cf.two_link_attempts(0.2, 0.5 * 0.8**2)) < Z * se


@pytest.mark.parametrize("m", [0, 3, 12])
def test_cutoff_two_links_against_the_markov_chain(m):
    chain = Chain(n_links=2, p_link=0.15, link_fidelity=1.0, length_km=40.0)
    tau = float(chain.attempt_time_s())
    mean, se = _attempts(chain, Memory(cutoff_s=(m + 0.5) * tau))
    assert abs(mean - cf.two_link_cutoff_attempts(0.15, m)) < Z * se
    if m == 3:  # a cutoff in whole rounds: cutoff_s = 4 tau discards after 4 rounds, like 4.5 tau
        mean4, se4 = _attempts(chain, Memory(cutoff_s=4.0 * tau))
        assert abs(mean4 - cf.two_link_cutoff_attempts(0.15, 4)) < Z * se4


@pytest.mark.parametrize("n_links", [1, 2, 3, 5])
def test_werner_links_joined_by_perfect_swaps(n_links):
    r = estimate_chains(KEY, Chain(n_links=n_links, p_link=0.3, link_fidelity=0.93), Memory(), 2000)
    assert float(r["fidelity"]) == pytest.approx(cf.werner_chain_fidelity(0.93, n_links), rel=1e-12)


def test_two_link_fidelity_with_decaying_memories():
    chain = Chain(n_links=2, p_link=0.1, link_fidelity=0.97, length_km=50.0)
    tau = float(chain.attempt_time_s())
    memory = Memory(t_depolarizing_s=30 * tau, t_dephasing_s=12 * tau)
    r = estimate_chains(KEY, chain, memory, 100_000)
    exact = cf.two_link_fidelity(0.1, 0.97, tau, 30 * tau, 12 * tau)
    assert abs(float(r["fidelity"]) - exact) < Z * float(r["fidelity_stderr"])


# --- the Bell-diagonal algebra against density matrices -----------------------------------------

_PAULI = [np.eye(2), np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1.0, -1.0])]
_PHI = np.array([1, 0, 0, 1]) / math.sqrt(2)


def _bell_diagonal(lam):  # lam over (Phi+, Psi+ = X, Psi- = Y, Phi- = Z) on the second qubit
    out = np.zeros((4, 4), complex)
    for weight, pauli in zip(lam, [_PAULI[0], _PAULI[1], _PAULI[2], _PAULI[3]]):
        v = np.kron(np.eye(2), pauli) @ _PHI
        out += weight * np.outer(v, v.conj())
    return out


def _on_qubit(rho, kraus, qubit, n_qubits):
    out = 0
    for k in kraus:
        ops = [np.eye(2)] * n_qubits
        ops[qubit] = k
        full = ops[0]
        for o in ops[1:]:
            full = np.kron(full, o)
        out = out + full @ rho @ full.conj().T
    return out


def _depolarize(q):
    return [math.sqrt(q + (1 - q) / 4) * _PAULI[0]] + [math.sqrt((1 - q) / 4) * P for P in _PAULI[1:]]


def _dephase(d):
    return [math.sqrt((1 + d) / 2) * _PAULI[0], math.sqrt((1 - d) / 2) * _PAULI[3]]


def test_swapping_bell_diagonal_pairs_multiplies_their_correlations():
    lam1, lam2 = np.array([0.8, 0.1, 0.06, 0.04]), np.array([0.7, 0.05, 0.1, 0.15])
    rho = np.kron(_bell_diagonal(lam1), _bell_diagonal(lam2))  # qubits 1 2 | 3 4
    proj = np.kron(np.kron(np.eye(2), np.outer(_PHI, _PHI)), np.eye(2))  # Bell measurement on 2 3: Phi+
    full = (proj @ rho @ proj).reshape([2] * 8)  # indices a b c d | e f g h
    rho14 = np.einsum("abcdebch->adeh", full).reshape(4, 4)
    rho14 /= np.trace(rho14)
    basis = [np.kron(np.eye(2), P) @ _PHI for P in _PAULI]
    lam = np.real([v.conj() @ rho14 @ v for v in basis])
    c = states.swap(states.correlations(jnp.asarray(lam1)), states.correlations(jnp.asarray(lam2)))
    np.testing.assert_allclose(lam, np.asarray(states.bell_coefficients(c)), atol=1e-12)


def test_stored_pair_decays_with_the_documented_law():
    f, t, t_dep, t_deph = 0.95, 0.3, 1.1, 0.7
    rho = _bell_diagonal(np.asarray(states.bell_coefficients(states.werner(f))))
    for qubit in (0, 1):  # both halves wait t
        rho = _on_qubit(rho, _depolarize(math.exp(-t / t_dep)), qubit, 2)
        rho = _on_qubit(rho, _dephase(math.exp(-t / t_deph)), qubit, 2)
    exact = float(np.real(_PHI @ rho @ _PHI))
    assert exact == pytest.approx(cf.stored_pair_fidelity(f, t, t_dep, t_deph), rel=1e-12)
    dep, deph = Memory(t_depolarizing_s=t_dep, t_dephasing_s=t_deph).decay(2 * t)  # 2 t qubit-seconds
    assert float(states.fidelity(states.decay(states.werner(f), dep, deph))) == pytest.approx(exact, rel=1e-12)


def test_key_fractions_of_a_werner_pair():
    f = 0.95
    c = states.werner(f)
    e = 2 * (1 - f) / 3
    h = lambda x: -x * math.log2(x) - (1 - x) * math.log2(1 - x)  # noqa: E731
    assert float(states.bbm92_fraction(c)) == pytest.approx(1 - 2 * h(e), rel=1e-12)
    lam = [f, (1 - f) / 3, (1 - f) / 3, (1 - f) / 3]
    assert float(states.six_state_fraction(c)) == pytest.approx(1 + sum(x * math.log2(x) for x in lam), rel=1e-12)
    assert float(states.bbm92_fraction(states.werner(0.7))) == 0.0


# --- the model's pieces -------------------------------------------------------------------------

def test_computed_link_is_barrett_kok():
    chain = Chain(n_links=4, length_km=200.0, coupling_efficiency=0.8, detector_efficiency=0.9, p_dark=1e-6)
    eta = 0.8 * 0.9 * 10 ** (-0.2 * 25.0 / 10)  # half of a 50 km link
    p_true, p_false = eta**2 / 2, 2 * eta * 1e-6
    assert float(chain.success_probability()) == pytest.approx(p_true + p_false, rel=1e-12)
    assert float(chain.fidelity()) == pytest.approx((p_true + p_false / 4) / (p_true + p_false), rel=1e-12)
    assert float(chain.attempt_time_s()) == pytest.approx(2 * 50.0 / 2e5)


def test_validation_names_the_keys():
    with pytest.raises(ValidationError, match="chain.n_links = 3: nested doubling needs a power of 2"):
        validate(Chain(n_links=3, policy="nested"), "chain.")
    with pytest.raises(ValidationError, match=r"memory.efficiency = 0 is out of range"):
        validate(Memory(efficiency=0.0), "memory.")
    with pytest.raises(ValidationError, match=r"chain.p_link = 1.5 is out of range"):
        validate(Chain(p_link=1.5), "chain.")
    validate(Chain(), "chain.")
    validate(Memory(t_dephasing_s=1.0, cutoff_s=0.01), "memory.")


def test_numpy_reference_agrees_with_the_kernel():
    chain = Chain(n_links=4, p_link=0.2, link_fidelity=1.0, swap_probability=0.6, policy="nested", length_km=20.0)
    memory = Memory(cutoff_s=8.5 * float(chain.attempt_time_s()))
    s = sample_chains(KEY, chain, memory, 50_000)
    for by_round in (False, True):
        a, sto = numpy_chains(np.random.default_rng(1), 20_000, 4, 0.2, 0.6, 8, "nested", by_round=by_round)
        for x, y in ((np.asarray(s.attempts), a), (np.asarray(s.storage_rounds), sto)):
            se = math.hypot(x.std() / math.sqrt(len(x)), y.std() / math.sqrt(len(y)))
            assert abs(x.mean() - y.mean()) < Z * se


def test_summary_over_a_sweep_is_finite_and_crosses_plob():
    tree = {"chain": Chain(n_links=4, swap_probability=1.0, link_fidelity=0.98),
            "memory": Memory(t_dephasing_s=10.0)}
    lengths = np.array([[0.0], [50.0], [400.0], [800.0]])
    r = chains_vs(KEY, tree, ("chain.length_km",), lengths, 4000)
    for name, value in r.items():
        assert np.all(np.isfinite(np.asarray(value)) | (np.asarray(value) == np.inf)), name
        assert not np.any(np.isnan(np.asarray(value))), name
    rate = np.asarray(r["rate_pairs_per_s"])
    np.testing.assert_allclose(rate[1:], 1 / np.asarray(r["mean_time_s"])[1:])
    key_per_round, plob = np.asarray(r["key_bits_per_round"]), np.asarray(r["plob_bits_per_use"])
    assert key_per_round[1] < plob[1] and key_per_round[2] > plob[2]  # below PLOB at 50 km, above at 400 km
    assert np.all(np.asarray(r["time_q50_s"])[1:] <= np.asarray(r["time_q99_s"])[1:])


def test_abandoned_chains_count_their_time_and_no_pair():
    chain = Chain(n_links=4, p_link=0.1, link_fidelity=1.0, length_km=10.0)
    s = sample_chains(KEY, chain, Memory(), 4000, max_events=2)
    a = np.asarray(s.attempts)
    assert (a < 0).any() and (a > 0).any()
    from qmc.repeaters import summarize

    r = summarize(s, chain, Memory())
    assert int(r["n_abandoned"]) == int((a < 0).sum())
    tau = float(chain.attempt_time_s())
    assert float(r["rate_pairs_per_s"]) == pytest.approx((a > 0).sum() / (np.abs(a).sum() * tau), rel=1e-12)
