"""Studies as plain Python (no Hydra): sweep axes, the key-rate study and its published distances."""

from __future__ import annotations

import numpy as np
import pytest

import qmc
from qmc import studies
from qmc.gallery import published_points
from qmc.detectors import gys2004


def gys_inputs():
    link = qmc.Link(qmc.WeakCoherentSource(), qmc.Fiber(length_km=0.0, loss_db_per_km=0.21), gys2004())
    protocol = qmc.DecoyBB84(intensities=(0.48, 0.05, 0.0), probabilities=(1.0, 0.0, 0.0), p_z=0.5, key_basis="both")
    analyses = {
        "infinite_decoy": qmc.InfiniteDecoy(f_ec=1.22),
        "vacuum_weak": qmc.VacuumWeak(f_ec=1.22),
        "no_decoy": qmc.NoDecoy(f_ec=1.22),
        "single_photon": qmc.SinglePhoton(f_ec=1.22),
        "plob": qmc.PLOB(),
    }
    return link, protocol, analyses


def max_distance(rows, analysis):
    return max(r["length_km"] for r in rows if r["analysis"] == analysis and r["key_rate"] > 0)


def test_axis_values():
    assert studies.axis_values({"start": 0, "stop": 2, "step": 1}, "x").tolist() == [0, 1, 2]
    assert studies.axis_values({"start": 0, "stop": 1, "num": 3}, "x").tolist() == [0, 0.5, 1]
    np.testing.assert_allclose(studies.axis_values({"start": 1e-2, "stop": 1, "num": 3, "spacing": "geometric"}, "x"),
                               [1e-2, 1e-1, 1])
    assert studies.axis_values({"start": 0, "stop": 9, "step": 1, "values": [3, 4]}, "x").tolist() == [3, 4]
    assert studies.axis_values([5, 6], "x").tolist() == [5, 6]
    with pytest.raises(qmc.ValidationError, match=r"x\.step = 0 is out of range"):
        studies.axis_values({"start": 0, "stop": 1, "step": 0}, "x")
    with pytest.raises(qmc.ValidationError, match=r"x\.stop = -1 is out of range"):
        studies.axis_values({"start": 0, "stop": -1, "num": 2}, "x")


def test_gys_study_reproduces_the_published_maximum_distances():
    # Lo, Ma, Chen, PRL 94, 230504 (2005) and Ma et al., PRA 72, 012326 (2005): the published
    # maximum distances are in experiments/lo_ma_chen_2005/published.csv.
    link, protocol, analyses = gys_inputs()
    chunks = list(studies.key_rate_vs_distance(
        link, protocol, analyses, np.arange(0.0, 201.0), np.geomspace(1e-4, 1.0, 500), chunk_size=67))
    assert [c.index for c in chunks] == [0, 1, 2] and {c.total for c in chunks} == {3}
    rows = [r for c in chunks for r in c.rows]
    assert len(rows) == 201 * 5
    assert max_distance(rows, "infinite_decoy") == 142  # qmc's own number (1 km grid)
    published = [p for p in published_points("lo_ma_chen_2005") if p["quantity"] == "max_distance_km"]
    assert {p["series"] for p in published} == {"infinite_decoy", "vacuum_weak", "no_decoy"}
    for p in published:  # the published numbers of the gallery, with their tolerances
        assert abs(max_distance(rows, p["series"]) - p["value"]) <= p["tolerance"], p
    assert max_distance(rows, "single_photon") > 160
    by = {(r["analysis"], r["length_km"]): r for r in rows}
    # Optimal mu of the decoy protocols is about 0.5 (Lo, Ma, Chen); far below without decoys.
    assert 0.4 < by["infinite_decoy", 50.0]["mu"] < 0.6
    assert by["no_decoy", 20.0]["mu"] < 0.05
    # Ordering of the curves wherever they are positive.
    for length in (0.0, 50.0, 100.0):
        r = {a: by[a, length]["key_rate"] for a in analyses}
        assert r["plob"] > r["single_photon"] > r["infinite_decoy"] >= r["vacuum_weak"] >= r["no_decoy"]
    assert by["plob", 0.0]["key_rate"] == np.inf and by["plob", 0.0]["reason"] == "ok"
    beyond = by["vacuum_weak", 180.0]
    assert beyond["key_rate"] == 0 and beyond["mu"] is None and beyond["reason"] != "ok"
    ok = by["infinite_decoy", 10.0]
    assert ok["key_rate_bps"] == pytest.approx(ok["key_rate"] * 1e9)


def test_study_uses_per_analysis_protocols():
    _, protocol, analyses = gys_inputs()
    no_decoy = studies.protocol_for(analyses["no_decoy"], protocol)
    np.testing.assert_array_equal(no_decoy.intensities, [0.48])
    np.testing.assert_array_equal(no_decoy.probabilities, [1.0])
    assert studies.protocol_for(analyses["vacuum_weak"], protocol) is protocol


def test_study_validates_before_compiling():
    link, protocol, analyses = gys_inputs()
    with pytest.raises(qmc.ValidationError, match=r"sweep\.length_km\[1\] = -1"):
        studies.key_rate_vs_distance(link, protocol, analyses, [0.0, -1.0])
    with pytest.raises(qmc.ValidationError, match=r"optimize\.mu\[0\] = 0"):
        studies.key_rate_vs_distance(link, protocol, analyses, [0.0], [0.0, 0.5])
    bad = qmc.DecoyBB84(intensities=(0.5, 0.1), probabilities=(1.0, 0.0))
    with pytest.raises(qmc.ValidationError, match="vacuum_weak needs three intensities"):
        studies.key_rate_vs_distance(link, bad, analyses, [0.0])


def test_fixed_mu_when_no_optimization():
    link, protocol, analyses = gys_inputs()
    (chunk,) = studies.key_rate_vs_distance(link, protocol, {"vacuum_weak": analyses["vacuum_weak"]}, [10.0], None)
    assert chunk.rows[0]["mu"] == 0.48 and chunk.rows[0]["key_rate"] > 0
