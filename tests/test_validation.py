"""Range checks: clear errors at the boundary, False under jit, rate 0 inside a sweep."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qmc
from qmc._pytree import replace_path
from qmc.analysis import reason_text
from qmc.sweep import evaluate, grid

import reference as ref


def _link(**detector):
    fields = dict(efficiency=0.045, p_dark=8.5e-7, misalignment=0.033) | detector
    return qmc.Link(qmc.WeakCoherentSource(), qmc.Fiber(20.0, 0.21), qmc.ThresholdDetectors(**fields))


def _fiber_link(**fiber):
    fields = dict(length_km=20.0, loss_db_per_km=0.21) | fiber
    return qmc.Link(qmc.WeakCoherentSource(), qmc.Fiber(**fields), qmc.detectors.gys2004())


def _protocol(**fields):
    return qmc.DecoyBB84(**(dict(intensities=(0.48, 0.05, 0.0), probabilities=(1.0, 0.0, 0.0)) | fields))


# (object, words the message must contain: field, value, allowed range or rule)
INVALID = {
    "efficiency": (_link(efficiency=1.5), ["detector.efficiency", "1.5", "[0, 1]"]),
    "p_dark": (_link(p_dark=-1e-3), ["detector.p_dark", "-0.001", "[0, 1)"]),
    "p_dark_one": (_link(p_dark=1.0), ["detector.p_dark", "= 1 ", "[0, 1)"]),
    "misalignment": (_link(misalignment=0.7), ["detector.misalignment", "0.7", "[0, 0.5]"]),
    "efficiency_nan": (_link(efficiency=math.nan), ["detector.efficiency", "nan", "[0, 1]"]),
    "click_model": (_link(click_model="avalanche"), ["detector.click_model", "avalanche", "threshold, ma2005"]),
    "length": (_fiber_link(length_km=-1.0), ["channel.length_km", "-1", ">= 0"]),
    "loss": (_fiber_link(loss_db_per_km=-0.2), ["channel.loss_db_per_km", "-0.2", ">= 0"]),
    "insertion": (_fiber_link(insertion_loss_db=-3.0), ["channel.insertion_loss_db", "-3", ">= 0"]),
    "series": (qmc.Link(qmc.WeakCoherentSource(), qmc.Series((qmc.Fiber(10.0, 0.2), qmc.Attenuator(-2.0))),
                        qmc.detectors.gys2004()), ["channel.channels.1.loss", "-2", ">= 0"]),
    "rep_rate": (qmc.Link(qmc.WeakCoherentSource(rep_rate_hz=0.0), qmc.Fiber(), qmc.ThresholdDetectors()),
                 ["source.rep_rate_hz", "0", "> 0"]),
    "sum": (_protocol(probabilities=(0.5, 0.3, 0.1)), ["probabilities", "[0.5 0.3 0.1]", "must sum to 1"]),
    "probability_range": (_protocol(probabilities=(1.2, -0.1, -0.1)), ["probabilities[0]", "1.2", "[0, 1]"]),
    "decreasing": (_protocol(intensities=(0.05, 0.48, 0.0)),
                   ["intensities", "[0.05 0.48 0.  ]", "strictly decreasing"]),
    "equal": (_protocol(intensities=(0.48, 0.48, 0.0)), ["intensities", "strictly decreasing"]),
    "negative_intensity": (_protocol(intensities=(0.48, 0.05, -0.01)), ["intensities[2]", "-0.01", ">= 0"]),
    "lengths": (_protocol(probabilities=(0.9, 0.1)), ["intensities", "probabilities", "same length"]),
    "p_z": (_protocol(p_z=1.2), ["p_z", "1.2", "[0, 1]"]),
    "key_basis": (_protocol(key_basis="X"), ["key_basis = X", "Z, both"]),
    "f_ec": (qmc.InfiniteDecoy(f_ec=0.9), ["f_ec", "0.9", ">= 1"]),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_validate_names_field_value_and_range(case):
    obj, words = INVALID[case]
    with pytest.raises(qmc.ValidationError) as info:
        qmc.validate(obj)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert isinstance(info.value, ValueError)


def test_valid_objects_pass_and_are_returned():
    for obj in (_link(), _fiber_link(), _protocol(), ref.gys_link(100.0), ref.gys_no_decoy_protocol(),
                qmc.Link(qmc.SinglePhotonSource(), qmc.Series((qmc.Fiber(), qmc.Attenuator(1.0))),
                         qmc.ThresholdDetectors()),
                _link(p_dark=0.0, efficiency=1.0, misalignment=0.5), qmc.VacuumWeak(f_ec=1.0), qmc.PLOB()):
        assert qmc.validate(obj) is obj
        assert bool(jax.jit(qmc.is_valid)(obj))


@pytest.mark.parametrize("case", sorted(INVALID))
def test_is_valid_is_false_under_jit(case):
    obj, _ = INVALID[case]
    assert not bool(jax.jit(qmc.is_valid)(obj))
    assert not bool(qmc.is_valid(obj))


# --- invalid points of a sweep: rate 0 with a reason, not an exception ---------------------
ASYMPTOTIC = sorted(qmc.analysis.ASYMPTOTIC)
# (path, invalid value, analyses it makes invalid: "all" or a tuple of names)
SWEEP_CASES = [
    ("link.detector.efficiency", 1.5, "all"),
    ("link.detector.p_dark", -1e-3, "all"),
    ("link.detector.misalignment", 0.7, "all"),
    ("link.channel.length_km", -1.0, "all"),
    ("link.channel.loss_db_per_km", -0.2, "all"),
    ("link.source.rep_rate_hz", -1.0, "all"),
    ("protocol.p_z", 1.2, ASYMPTOTIC),
    ("protocol.probabilities.0", 0.5, ASYMPTOTIC),
    ("protocol.intensities.0", -0.1, ASYMPTOTIC),
    ("protocol.intensities.1", 0.6, ASYMPTOTIC),           # above the signal: not decreasing
    ("protocol.intensities.2", 0.01, ("vacuum_weak",)),    # decreasing, but no vacuum decoy
    ("analysis.f_ec", 0.9, ASYMPTOTIC),
]


def _base_tree(name):
    protocol = ref.gys_no_decoy_protocol(0.01) if name == "no_decoy" else ref.gys_protocol()
    return {"analysis": qmc.ANALYSES[name](), "link": ref.gys_link(20.0, "threshold"), "protocol": protocol}


def _rate(tree):
    return tree["analysis"].key_rate(tree["link"], tree["protocol"])


def _applies(path, tree):
    try:
        value = qmc._pytree.get_path(tree, path)
        return np.ndim(value) == 0
    except (KeyError, IndexError):
        return False


@pytest.mark.parametrize("name", sorted(ASYMPTOTIC + ["plob"]))
def test_invalid_points_of_a_vmapped_sweep_give_rate_zero(name):
    """One jit(vmap) over a stack of trees: the valid point keeps its rate, every invalid one
    gets rate 0 and reason "invalid parameters" (no exception, no NaN)."""
    base = _base_tree(name)
    cases = [(path, value) for path, value, which in SWEEP_CASES
             if _applies(path, base) and (which == "all" or name in which)]
    trees = [base] + [replace_path(base, path, jnp.asarray(value)) for path, value in cases]
    trees = [jax.tree_util.tree_map(jnp.asarray, t) for t in trees]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)
    out = jax.jit(jax.vmap(_rate))(stacked)
    rate, reason = np.asarray(out.rate), np.asarray(out.reason)
    assert rate[0] > 0 and reason_text(reason[0]) == "ok"
    for i, (path, value) in enumerate(cases, start=1):
        assert rate[i] == 0.0, (path, value, rate[i])
        assert reason_text(reason[i]) == "invalid parameters", (path, value, reason_text(reason[i]))
    for field in dataclasses.fields(out):
        assert not np.any(np.isnan(np.asarray(getattr(out, field.name)))), field.name


def test_invalid_grid_point_through_qmc_sweep():
    """The same through ``qmc.sweep.evaluate``: a grid over detector efficiency with 1.5 in it."""
    analysis = qmc.VacuumWeak(f_ec=1.22)
    tree = {"link": ref.gys_link(20.0), "protocol": ref.gys_protocol()}
    out = evaluate(lambda t: analysis.key_rate(t["link"], t["protocol"]), tree,
                   grid({"link.detector.efficiency": [0.045, 1.5, 0.5, -0.1]}), chunk_size=2)
    assert [reason_text(r) for r in out.reason] == ["ok", "invalid parameters", "ok", "invalid parameters"]
    assert out.rate[0] > 0 and out.rate[2] > out.rate[0] and out.rate[1] == 0 and out.rate[3] == 0
