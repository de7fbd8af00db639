"""The Python API from outside: names reachable from `import qmc`, rates of 0 that say why, the
protocol's defaults, the vacuum term, finite key by block size or by pulses, what the optimizer frees."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import qmc
from qmc import presets

LINK = presets.lim2014_link(50.0)
LIM_PROTOCOL = qmc.DecoyBB84(intensities=(0.5, 0.1, 2e-4), probabilities=(0.7, 0.2, 0.1), p_z=0.9, key_basis="Z")
GYS = presets.gys_link(50.0, click_model="ma2005")
GYS_PROTOCOL = qmc.DecoyBB84(intensities=(0.48, 0.05, 0.0), probabilities=(1.0, 0.0, 0.0))


def test_the_names_the_readme_uses_are_reachable_from_import_qmc():
    for name in ("FiniteLim2014", "FiniteRusca2018", "AsymptoticTwoDecoy", "AsymptoticOneDecoy", "InfiniteDecoy",
                 "VacuumWeak", "NoDecoy", "SinglePhoton", "PLOB", "ExactEngine", "BlockEngine", "PulseEngine",
                 "StreamEngine", "Tally", "maximize", "maximize_sweep", "Link", "Fiber", "DecoyBB84"):
        assert hasattr(qmc, name), name
    assert qmc.optimize.maximize is qmc.maximize and qmc.studies.get("finite_lim2014").name == "finite_lim2014"
    assert qmc.presets.lim2014_link(10.0).channel.length_km == 10.0


@pytest.mark.parametrize("analysis, protocol, expected", [
    (qmc.InfiniteDecoy(f_ec=0.9), GYS_PROTOCOL, "f_ec = 0.9 is out of range: must be >= 1"),
    (qmc.FiniteLim2014(), qmc.DecoyBB84(), "protocol.key_basis = both: finite_lim2014 needs key_basis 'Z'"),
    (qmc.VacuumWeak(), qmc.DecoyBB84(intensities=(0.5, 0.1, 0.01)), "protocol.intensities = [0.5  0.1  0.01]: "
     "vacuum_weak needs the last intensity to be 0"),
])
def test_a_rate_of_zero_names_the_rule_and_its_values(analysis, protocol, expected):
    link = GYS if isinstance(analysis, (qmc.InfiniteDecoy, qmc.VacuumWeak)) else LINK
    out = analysis.key_rate(link, protocol)
    assert float(out.rate) == 0.0 and qmc.analysis.reason_text(out.reason) == "invalid parameters"
    text = analysis.explain(link, protocol)
    assert text.startswith(expected), text
    with pytest.raises(qmc.ValidationError) as info:  # the optimizer refuses with the same words
        qmc.maximize(analysis, link, protocol)
    assert str(info.value).startswith(expected.split(": ")[0])


def test_a_valid_rate_of_zero_says_why_with_its_numbers():
    far = presets.lim2014_link(300.0)
    text = qmc.FiniteLim2014(block_size=1e6).explain(far, LIM_PROTOCOL)
    assert "qber = " in text and not text.startswith("ok")
    assert qmc.FiniteLim2014(block_size=1e9).explain(LINK, LIM_PROTOCOL).startswith("ok: ")


@pytest.mark.parametrize("cls", [qmc.InfiniteDecoy, qmc.VacuumWeak, qmc.NoDecoy, qmc.SinglePhoton, qmc.PLOB,
                                 qmc.FiniteLim2014, qmc.FiniteRusca2018, qmc.AsymptoticTwoDecoy,
                                 qmc.AsymptoticOneDecoy])
def test_the_protocols_defaults_work_or_say_which_field_to_set(cls):
    analysis, protocol = cls(), qmc.DecoyBB84()
    try:
        analysis.validate_protocol(protocol)
    except qmc.ValidationError as err:
        text = str(err)
        assert "\n" not in text and ": set " in text, text  # one line, naming the field and a value
        return
    assert float(analysis.key_rate(GYS, protocol).rate) >= 0.0


def test_the_vacuum_term_is_an_option_with_the_papers_defaults():
    mu = 0.48
    without = qmc.InfiniteDecoy(f_ec=1.22).key_rate(GYS, GYS_PROTOCOL)
    with_vacuum = qmc.InfiniteDecoy(f_ec=1.22, vacuum_term=True).key_rate(GYS, GYS_PROTOCOL)
    y0 = float(GYS.detector.background_yield)  # the vacuum yield of Ma et al.'s model, both bases
    # each matched basis adds P(signal) p_b^2 Y0 e^-mu: sum over bases with p_z = 1/2
    assert float(with_vacuum.rate - without.rate) == pytest.approx(0.5 * y0 * math.exp(-mu), rel=1e-9)
    weak = qmc.VacuumWeak(f_ec=1.22, vacuum_term=True).key_rate(GYS, GYS_PROTOCOL).rate
    assert float(weak - qmc.VacuumWeak(f_ec=1.22).key_rate(GYS, GYS_PROTOCOL).rate) == pytest.approx(
        0.5 * y0 * math.exp(-mu), rel=1e-6)
    # the finite-key analyses count the vacuum detections s_X,0 by default (Lim's Eq. (1))
    lim = qmc.FiniteLim2014(block_size=1e8, eps_sec=1e-10)
    full, bare = lim.key_rate(LINK, LIM_PROTOCOL), qmc.FiniteLim2014(
        block_size=1e8, eps_sec=1e-10, vacuum_term=False).key_rate(LINK, LIM_PROTOCOL)
    assert float(full.key_length - bare.key_length) == pytest.approx(max(float(full.s0), 0.0), rel=1e-9)


@pytest.mark.parametrize("cls, protocol", [
    (qmc.FiniteLim2014, LIM_PROTOCOL),
    (qmc.FiniteRusca2018, qmc.DecoyBB84(intensities=(0.5, 0.1), probabilities=(0.7, 0.3), p_z=0.9, key_basis="Z")),
])
def test_a_fixed_number_of_pulses_gives_the_rate_of_the_block_it_implies(cls, protocol):
    by_block = cls(block_size=1e8, kappa=1e-15, eps_cor=1e-15).key_rate(LINK, protocol)
    n_pulses = float(by_block.n_pulses)
    by_pulses = cls(block_size=123.0, n_pulses=n_pulses, kappa=1e-15, eps_cor=1e-15).key_rate(LINK, protocol)
    assert float(by_pulses.n_key) == pytest.approx(1e8, rel=1e-12)
    assert float(by_pulses.rate) == pytest.approx(float(by_block.rate), rel=1e-9)
    assert float(by_pulses.key_length) == pytest.approx(float(by_block.key_length), rel=1e-9)
    with pytest.raises(qmc.ValidationError, match="n_pulses = -1 is out of range"):
        qmc.validate(cls(n_pulses=-1.0))


def test_the_optimizer_frees_every_parameter_the_analysis_reads():
    space = LIM_PROTOCOL.parameter_space(qmc.AsymptoticTwoDecoy())
    assert space.names(3) == ("mu1", "mu2", "p_mu1", "p_mu2", "p_mu3", "p_z")
    assert LIM_PROTOCOL.parameter_space(qmc.InfiniteDecoy()).names(3) == ("mu1", "p_mu1", "p_mu2", "p_mu3", "p_z")
    assert LIM_PROTOCOL.parameter_space(qmc.PLOB()).size(3) == 0
    # an asymptotic optimum with every parameter free is at least the signal-only one
    free = qmc.maximize(qmc.AsymptoticTwoDecoy(), LINK, LIM_PROTOCOL)
    signal_only = qmc.maximize(qmc.AsymptoticTwoDecoy(), LINK, LIM_PROTOCOL, space=qmc.protocols.DecoySpace("signal"))
    assert float(free.rate.rate) >= float(signal_only.rate.rate) > 0.0
    np.testing.assert_array_equal(np.asarray(signal_only.protocol.probabilities), LIM_PROTOCOL.probabilities)
    assert jax.tree_util.tree_structure(free.protocol) == jax.tree_util.tree_structure(LIM_PROTOCOL)
