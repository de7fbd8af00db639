"""Optimization on links with classical traffic (issue 20, item 5): the noise of the traffic
(:mod:`qmc.channels.raman`, pure jnp) is one more part of the link, so study ``optimize_link``
runs unchanged; its optimum on a noisy link beats the configured parameters, stays below the
optimum without traffic, and the block engine confirms it; bad noise inputs are refused in one
line before anything compiles.

One compiled optimizer and block-engine check (Lim et al., PRA 89, 022307 (2014), n_X = 1e9) serve
every test: the link without traffic is the same link at -inf dBm.
"""

from __future__ import annotations

import math

import jax
import pytest

import qmc
from qmc import cli
from qmc._pytree import replace_path
from qmc.channels.raman import ClassicalChannel
from qmc.studies.optimize_link import optimize_link

COMMAND = ("experiment=optimize_link", "classical=data_c_band", "source.wavelength_nm=1550.12",
           "~analysis.variants.asymptotic_two_decoy", "check.n_sessions=200")


def _rows(chunks):
    return [row for chunk in chunks for row in chunk.rows]


@pytest.fixture(scope="module")
def noisy():
    _, spec, chunks = cli.prepare(cli.compose(*COMMAND))
    return spec, _rows(chunks)


def _api(spec, link):
    return _rows(optimize_link(link, spec["protocol"], spec["analysis"]["variants"], [50.0], check_sessions=200))


def test_the_command_runs_with_classical_traffic(noisy):
    spec, rows = noisy
    link = spec["link"]
    assert float(link.classical.launch_power_dbm) == -20.0 and link.classical.direction == "co"
    assert float(qmc.link.noise_click_probability(link)) > float(link.detector.p_dark)  # the noise matters
    (row,) = rows
    assert row["analysis"] == "finite_lim2014" and row["length_km"] == 50.0 and row["reason"] == "ok"
    for name in ("key_rate", "mu1", "mu2", "p_mu1", "p_z", "qber", "phase_error", "key_length"):
        assert math.isfinite(row[name]), (name, row)
    assert row["mc_sessions"] == 200 and row["mc_agrees"] is True  # the block engine confirms the optimum


def test_the_optimum_beats_the_configured_parameters_and_stays_below_the_noiseless_one(noisy):
    spec, (row,) = noisy
    link, protocol = spec["link"], spec["protocol"]
    analysis = spec["analysis"]["variants"]["finite_lim2014"]
    configured = float(jax.jit(lambda a, l, p: a.key_rate(l, p).rate)(analysis, link, protocol))
    quiet = replace_path(link, "classical.launch_power_dbm", -math.inf)  # the same link, no noise
    (noiseless,) = _api(spec, quiet)
    assert 0.0 < configured < row["key_rate"] < noiseless["key_rate"], (configured, row["key_rate"], noiseless)
    assert noiseless["key_rate"] < 2.0 * row["key_rate"]  # -20 dBm at 50 km costs key, not most of it
    assert noiseless["mc_agrees"] is True


@pytest.mark.parametrize("source_nm, classical_nm, message", [
    (1200.0, 1549.32, "source.wavelength_nm = 1200 is out of range: must be in [1260, 1675]"),
    (1675.0, 1300.0, "classical.wavelength_nm = 1300 and source.wavelength_nm = 1675 are 51.6 THz apart"),
])
def test_bad_noise_inputs_are_refused_in_one_line(noisy, source_nm, classical_nm, message):
    spec, _ = noisy
    link = spec["link"]
    bad = qmc.Link(qmc.WeakCoherentSource(wavelength_nm=source_nm), link.channel, link.detector,
                   ClassicalChannel(classical_nm, -20.0, "co", isolation_db=100.0))
    with pytest.raises(qmc.ValidationError) as err:
        _api(spec, bad)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
