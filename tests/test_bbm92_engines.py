"""BBM92 in the engines: a protocol that owns its outcome layout (qmc.protocols.BBM92) runs on the
exact, block and pulse engines (and the fused kernel) unchanged.

Monte Carlo against the exact cell probabilities: every cell |z| < 5 with z = (count - mean) /
sqrt(mean) (Poisson approximation of the multinomial, conservative); the fused kernel equals the
XLA fast path bit for bit (Pallas's interpreter on a CPU: small blocks).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmc.analysis import BBM92Asymptotic
from qmc.engines import BlockEngine, exact, pulse
from qmc.engines.cells import CellTally
from qmc.entanglement import PairSource, TwoArmLink
from qmc.entanglement.bbm92 import bbm92_key_rate, gain_and_qber, key_rate_from_table
from qmc.protocols import BBM92

LINK = TwoArmLink.gys2004(20.0, PairSource(mean_pair_number=0.05))  # near the optimal mu: a key
PROTOCOL = BBM92()


def _z(counts, n):
    mean = n * np.asarray(exact.joint_probabilities(LINK, PROTOCOL))
    counts = np.asarray(counts, float)
    return (counts - mean) / np.sqrt(np.maximum(mean, 1.0))


def test_the_exact_observations_are_the_table_s_gain_and_qber():
    obs = exact.observations(LINK, PROTOCOL)
    gain, qber = gain_and_qber(LINK.table())
    np.testing.assert_allclose(np.asarray(obs.gain[0]), np.asarray(gain), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(obs.error_gain[0] / obs.gain[0]), np.asarray(qber), rtol=1e-12)
    rate = BBM92Asymptotic(f_ec=1.16).key_rate(LINK, PROTOCOL)
    assert float(rate.rate) == pytest.approx(float(key_rate_from_table(LINK.table(), 1.16)), rel=1e-13)
    # Symmetric bases: Ma-Fung-Lo's R = q Q [1 - f H2(E) - H2(E)], q = 1/2.
    assert float(rate.rate) == pytest.approx(float(bbm92_key_rate(gain[0], qber[0], 1.16)), rel=1e-12)


def test_the_pulse_engine_draws_the_protocol_s_cells():
    n = 2**20
    tally = pulse.simulate(jax.random.key(4), LINK, PROTOCOL, n, block_pulses=2**18, chunk=2**18)
    assert isinstance(tally, CellTally) and int(tally.counts.sum()) == n
    assert np.max(np.abs(_z(tally.counts, n))) < 5.0


def test_the_block_engine_draws_the_protocol_s_cells():
    n = 10**8
    tallies = BlockEngine(n_pulses=n, n_sessions=3).tally(jax.random.key(5), LINK, PROTOCOL)
    assert tallies.counts.shape == (3, 64)
    for counts in np.asarray(tallies.counts):
        assert counts.sum() == n and np.max(np.abs(_z(counts, n))) < 5.0
    one = BlockEngine(n_pulses=n).tally(jax.random.key(5), LINK, PROTOCOL)
    np.testing.assert_array_equal(np.asarray(one.counts), np.asarray(tallies.counts[0]))
    # The analysis reads the counted observations like the expected ones: at 1e10 pulses per
    # session the rates scatter by about 1 % (5 % at 1e8), so 5 % is about five of their spreads.
    many = BlockEngine(n_pulses=10**10, n_sessions=3).tally(jax.random.key(6), LINK, PROTOCOL)
    rates = jax.vmap(lambda o: BBM92Asymptotic().key_rate_from_observations(o, PROTOCOL))(many.observations())
    expected = float(BBM92Asymptotic().key_rate(LINK, PROTOCOL).rate)
    assert np.all(np.abs(np.asarray(rates.rate) / expected - 1.0) < 0.05)


def test_the_fused_kernel_equals_the_fast_path_bit_for_bit():
    block = 2**12
    n = jnp.int64(2 * block + 77)
    kw = {"chunk": block, "block_pulses": block}
    ref = pulse.simulate(jax.random.key(6), LINK, PROTOCOL, n, methods=("compare", "scatter"), **kw)
    got = pulse.simulate(jax.random.key(6), LINK, PROTOCOL, n, methods=("compare", "fused"), **kw)
    np.testing.assert_array_equal(np.asarray(got.counts), np.asarray(ref.counts))


def test_the_physical_path_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="owns its outcome layout"):
        pulse.simulate(jax.random.key(0), LINK, PROTOCOL, 1000, path="physical")


def test_the_protocol_s_mean_pair_number_overrides_the_source_s():
    brighter = BBM92(mean_pair_number=0.5)
    table = np.asarray(exact.joint_probabilities(LINK, brighter))
    source = PairSource(mean_pair_number=0.5)
    want = np.asarray(exact.joint_probabilities(TwoArmLink.gys2004(20.0, source), PROTOCOL))
    np.testing.assert_array_equal(table, want)
