"""Classical traffic in the Link (WDM coexistence): one background definition for every engine.

p_bg = 1 - (1 - p_dark)(1 - p_noise) per detector per gate (:meth:`qmc.Link.background_click_probability`),
p_noise from :mod:`qmc.channels.raman`. Without traffic every number is the dark-count-only one,
bit for bit; with traffic the exact table, the pulse engine's physical path (an independent
sampler), Lim's model and the key rate all see the same background; the config group composes,
builds and is validated with one-line errors."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qmc
from qmc import cli
from qmc._pytree import replace_path
from qmc.channels.raman import ClassicalChannel, ClassicalTraffic, noise_clicks_per_gate, noise_photons_per_gate
from qmc.engines import exact
from qmc.engines.lim2014 import Lim2014Model
from qmc.engines.pulse import simulate
from qmc.link import background_click_probability, check_noise, noise_click_probability

Z = 5.0
PROTO = qmc.DecoyBB84(intensities=(0.48, 0.1, 0.0), probabilities=(0.2, 0.2, 0.6))
# A classical channel at 1530 nm beside a quantum channel at 1550 nm (Stokes side, 2.5 THz).
TRAFFIC = ClassicalChannel(1530.0, -10.0, "co", loss_db_per_km=0.2, isolation_db=100.0)


def _link(classical=None, click_model="threshold", length_km=50.0, p_dark=1e-6, source=None):
    det = qmc.ThresholdDetectors(0.1, p_dark, 0.01, click_model, filter_nm=0.8, gate_ns=1.0)
    return qmc.Link(source or qmc.WeakCoherentSource(), qmc.Fiber(length_km, 0.2), det, classical)


def _dark_only_table(link, protocol, source=None):
    """The outcome table as computed before traffic existed: the detector's p_dark, nothing else."""
    source = link.source if source is None else source
    det = link.detector
    eta = link.transmittance()
    mu = jnp.asarray(protocol.intensities)[:, None, None, None]
    shape = (mu.shape[0], 2, 2, 2)
    if det.click_model == "ma2005":
        return exact._ma2005_table(source, mu, eta, det.background_yield, det.misalignment, shape)
    eta_0, eta_1 = exact.port_efficiencies(eta, det.misalignment)
    return jnp.broadcast_to(exact._threshold_table(source, mu, eta_0[None], eta_1[None], det.p_dark), shape + (4,))


def _p_bg_by_hand(link):
    """p_bg from the raman module's functions, without qmc.link."""
    n = noise_photons_per_gate(link.classical, link.channel.length_km, link.channel.loss_db_per_km,
                               link.source.wavelength_nm, link.detector.filter_nm, link.detector.gate_ns)
    p_noise = float(noise_clicks_per_gate(n, link.detector.efficiency))
    p_dark = float(link.detector.p_dark)
    return 1.0 - (1.0 - p_dark) * (1.0 - p_noise), p_noise


@pytest.mark.parametrize("click_model", ["threshold", "ma2005"])
@pytest.mark.parametrize("classical", [None, ClassicalTraffic(), ClassicalTraffic.evenly([1530.0], -math.inf)],
                         ids=["none", "no_channels", "dark_channel"])
def test_without_traffic_the_outcome_table_is_bit_identical(click_model, classical):
    link = _link(classical, click_model)
    want = np.asarray(_dark_only_table(link, PROTO))
    assert np.asarray(exact.outcome_table(link, PROTO)).tobytes() == want.tobytes()
    fock = qmc.FockSource(n_photons=1)
    assert (np.asarray(exact.outcome_table(link, PROTO, fock)).tobytes()
            == np.asarray(_dark_only_table(link, PROTO, fock)).tobytes())
    # The launch power -inf dBm: the formula itself reduces to p_dark exactly (p_noise = 0.0).
    assert float(background_click_probability(link)) == float(link.detector.p_dark)


def test_the_default_link_has_no_traffic_and_a_1550_nm_source():
    link = qmc.Link()
    assert isinstance(link.classical, ClassicalTraffic) and link.classical.channels == ()
    assert link.background_click_probability() is link.detector.p_dark
    assert float(link.source.wavelength_nm) == 1550.0
    assert float(noise_click_probability(link)) == 0.0


@pytest.mark.parametrize("click_model", ["threshold", "ma2005"])
def test_traffic_raises_each_detectors_background_and_the_vacuum_gain(click_model):
    link = _link(TRAFFIC, click_model)
    p_bg, p_noise = _p_bg_by_hand(link)
    assert 1e-4 < p_noise < 1e-1  # the test means something: noise well above p_dark = 1e-6
    assert float(link.background_click_probability()) == pytest.approx(p_bg, rel=1e-12)
    vacuum = np.asarray(exact.outcome_table(link, PROTO))[2]  # (a, b, x, outcome) at mu = 0
    gain = 1.0 - vacuum[..., 0]
    assert np.allclose(gain, 1.0 - (1.0 - p_bg) ** 2, rtol=1e-12, atol=0)
    dark_gain = 1.0 - np.asarray(_dark_only_table(link, PROTO))[2][..., 0]
    assert np.all(gain > 100 * dark_gain)
    if click_model == "threshold":  # each detector fires with p_bg, independently of the other
        assert np.allclose(vacuum[..., 1] + vacuum[..., 3], p_bg, rtol=1e-12, atol=0)
        assert np.allclose(vacuum[..., 3], p_bg**2, rtol=1e-12, atol=0)


def test_lim2014_model_reads_the_same_background():
    link = _link(TRAFFIC)
    p_bg, _ = _p_bg_by_hand(link)
    obs = Lim2014Model(p_afterpulse=0.0).observations(None, link, PROTO)
    assert np.allclose(np.asarray(obs.gain)[2], 1.0 - (1.0 - 2.0 * p_bg), rtol=1e-12)  # D_0 = 2 p_dc


def test_pulse_engine_noise_clicks_agree_with_the_exact_background():
    # A noisy fiber: a third of the clicks are noise. The physical path draws photons and Bernoulli(p_bg)
    # backgrounds, independent of the exact engine's formulas; the fast path draws from its table.
    link = _link(TRAFFIC, length_km=50.0)
    p_bg, _ = _p_bg_by_hand(link)
    n, block = 2**18, 2**16
    table = np.asarray(exact.outcome_table(link, PROTO))
    joint = np.asarray(PROTO.class_probabilities())[..., None] * table
    for path in ("physical", "fast"):
        counts = np.asarray(simulate(jax.random.key(7), link, PROTO, n, path=path, chunk=block,
                                     block_pulses=block).counts)
        vacuum = counts[2]  # (a, b, x, outcome)
        n_vac = int(vacuum.sum())
        for fires in ((1, 3), (2, 3)):  # detector 0, detector 1 (double clicks included)
            hits = int(vacuum[..., list(fires)].sum())
            sd = math.sqrt(n_vac * p_bg * (1 - p_bg))
            assert n_vac * p_bg > 100
            assert abs(hits - n_vac * p_bg) <= Z * sd, f"{path}: {hits=}, expected {n_vac * p_bg:.1f} ± {sd:.1f}"
        p = joint.ravel()
        sd = np.sqrt(n * p * (1 - p))
        assert np.all(np.abs(counts.ravel() - n * p) <= Z * sd + 1.0), path


def test_key_rate_falls_with_launch_power_at_a_fixed_length():
    link = _link(ClassicalChannel(1530.0, 0.0, "co", loss_db_per_km=0.2), length_km=25.0)
    protocol = qmc.DecoyBB84(intensities=(0.48, 0.1, 0.0), probabilities=(1.0, 0.0, 0.0))
    analysis = qmc.InfiniteDecoy()
    powers = jnp.linspace(-40.0, -5.0, 8)

    @jax.jit
    def rates(p):
        return jax.vmap(lambda x: analysis.key_rate(replace_path(link, "classical.launch_power_dbm", x), protocol).rate)(p)

    r = np.asarray(rates(powers))
    no_traffic = float(analysis.key_rate(dataclasses.replace(link, classical=None), protocol).rate)
    assert r[0] > 0 and r[0] < no_traffic
    positive = r > 0
    assert np.all(np.diff(r[positive]) < 0), r
    assert np.all(np.diff(r) <= 0) and r[-1] == 0.0, r  # the noise eventually kills the key


def test_traffic_config_composes_builds_and_validates():
    study, spec, _ = cli.prepare(cli.compose("classical=data_1550", "classical.launch_power_dbm=0",
                                             "source.wavelength_nm=1310"))
    link = spec["link"]
    assert isinstance(link.classical, ClassicalChannel) and float(link.classical.launch_power_dbm) == 0.0
    assert float(link.background_click_probability()) > float(link.detector.p_dark)
    assert float(link.source.wavelength_nm) == 1310.0 and float(link.detector.filter_nm) > 0
    _, spec, _ = cli.prepare(cli.compose())  # the default: no traffic
    assert spec["link"].background_click_probability() is spec["link"].detector.p_dark
    assert "classical" in cli.known_keys()


@pytest.mark.parametrize("override, message", [
    ("classical.direction=sideways", "classical.direction = sideways: must be one of co, counter"),
    ("classical.launch_power_dbm=40", "classical.launch_power_dbm = 40 is out of range: must be <= 30"),
    ("detector.filter_nm=0", "detector.filter_nm = 0 is out of range: must be > 0"),
    ("detector.gate_ns=-1", "detector.gate_ns = -1 is out of range: must be > 0"),
    ("source.wavelength_nm=1000", "source.wavelength_nm = 1000 is out of range: must be in [1260, 1675]"),
    ("source.wavelength_nm=1260", "classical.wavelength_nm = 1550 and source.wavelength_nm = 1260 are 44.5 THz apart"),
])
def test_bad_traffic_values_are_refused_with_one_line_naming_the_key(override, message):
    with pytest.raises(qmc.ValidationError) as err:
        cli.prepare(cli.compose("classical=data_1550", override))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_traffic_needs_a_fiber_channel():
    series = qmc.Series((qmc.Fiber(10.0, 0.2), qmc.Attenuator(3.0)))
    with pytest.raises(qmc.ValidationError, match="classical: classical traffic needs a fiber channel"):
        check_noise(qmc.Link(channel=series, classical=TRAFFIC))
    check_noise(qmc.Link(channel=series))  # no traffic: nothing to check
