"""Study ``key_per_day`` and :func:`qmc.freespace.tle.passes_in_window`.

The passes of a window are disjoint, in time order, each culminating above the minimum elevation
inside the window (a pass already up at the start counts when its culmination is in the window),
and sampled as :func:`~qmc.freespace.tle.pass_from_tle` samples one; the experiment composes via
``qmc.cli``; its key per day is the sum of its passes' keys, and in the day of the ISS TLE over the
experiment's station (4 passes, culminations of about 17, 24, 50 and 69 deg) the key per pass grows
with the culmination elevation; a bad station latitude or TLE is refused in one line naming the key.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from qmc import cli
from qmc.validation import ValidationError

pytest.importorskip("sgp4")
from qmc.freespace import tle  # noqa: E402

matplotlib.use("Agg")

ISS_TLE = (  # ISS (ZARYA), epoch 2019-12-09 (the example TLE of the skyfield documentation)
    "1 25544U 98067A   19343.69339541  .00001764  00000-0  38792-4 0  9991",
    "2 25544  51.6439 211.2001 0007417  17.6667  85.6398 15.50103472202482",
)
STATION = (48.0, 11.0, 0.0)
MIN_EL = 10.0


def test_passes_in_the_window_are_disjoint_ordered_and_above_the_minimum():
    timed = tle.timed_passes_in_window(*ISS_TLE, *STATION, min_elevation_deg=MIN_EL, time_step_s=5.0, days=1.0)
    from sgp4.api import Satrec
    sat = Satrec.twoline2rv(*ISS_TLE)
    start = sat.jdsatepoch + sat.jdsatepochF  # the window starts at the TLE's epoch
    assert 3 <= len(timed) <= 8
    for p in timed:
        assert p.rise_jd < p.culmination_jd < p.set_jd
        assert start <= p.culmination_jd < start + 1.0
        el = np.asarray(p.the_pass.elevation_deg)
        assert el.min() >= MIN_EL - 1e-6 and el.max() > MIN_EL
        assert np.asarray(p.the_pass.time_s)[np.argmax(el)] == 0.0  # t = 0 at culmination
    for a, b in zip(timed[:-1], timed[1:]):
        assert a.set_jd < b.rise_jd  # disjoint and in time order
    # the first pass is already up at the epoch (pass_from_tle skips it; the window counts it since it
    # culminates after the start); the second is pass_from_tle's next pass, sampled the same way
    assert timed[0].rise_jd < start < timed[0].culmination_jd
    nxt = tle.pass_from_tle(*ISS_TLE, *STATION, min_elevation_deg=MIN_EL, time_step_s=5.0)
    assert len(nxt) == len(timed[1].the_pass)
    np.testing.assert_allclose(np.asarray(nxt.elevation_deg), np.asarray(timed[1].the_pass.elevation_deg),
                               atol=1e-3)
    plain = tle.passes_in_window(*ISS_TLE, *STATION, min_elevation_deg=MIN_EL, time_step_s=5.0, days=1.0)
    assert [len(p) for p in plain] == [len(p.the_pass) for p in timed]
    # a window starting a minute before a culmination counts that pass (already up); a minute after, not
    second = timed[1]
    before = tle.timed_passes_in_window(*ISS_TLE, *STATION, min_elevation_deg=MIN_EL, time_step_s=5.0,
                                        start_jd=second.culmination_jd - 60 / 86400, days=0.05)
    after = tle.timed_passes_in_window(*ISS_TLE, *STATION, min_elevation_deg=MIN_EL, time_step_s=5.0,
                                       start_jd=second.culmination_jd + 60 / 86400, days=0.05)
    assert len(before) == 1 and before[0].culmination_jd == pytest.approx(second.culmination_jd, abs=1e-7)
    assert after == []
    assert tle.jd_to_utc(2451545.0) == "2000-01-01T12:00:00Z"


def test_the_experiment_composes_and_its_day_is_the_sum_of_its_passes():
    study, spec, chunks = cli.prepare(cli.compose("experiment=key_per_day", "~analysis.variants.asymptotic_two_decoy"))
    assert study.name == "key_per_day"
    assert spec["orbit"].tle_line1 == ISS_TLE[0] and spec["station"].latitude_deg == pytest.approx(40.39)
    rows = [r for c in chunks for r in c.rows]
    assert set(rows[0]) == set(study.columns)
    passes = [r for r in rows if r["kind"] == "pass"]
    (summary,) = [r for r in rows if r["kind"] == "summary"]
    assert summary["n_passes"] == len(passes) == 4
    assert summary["key_per_day_bits"] == pytest.approx(sum(r["key_per_pass_bits"] for r in passes), rel=1e-12)
    assert [r["pass_index"] for r in passes] == list(range(4))
    assert all(a["culmination_jd"] < b["culmination_jd"] for a, b in zip(passes[:-1], passes[1:]))
    assert all(r["culmination_deg"] >= 15.0 for r in passes)
    # the day of this TLE over this station: more culmination, more key (the lowest pass gives none)
    by_elevation = sorted(passes, key=lambda r: r["culmination_deg"])
    keys = [r["key_per_pass_bits"] for r in by_elevation]
    assert keys[0] >= 0.0 and all(a < b for a, b in zip(keys[:-1], keys[1:]))
    assert keys[-1] > 1e5
    fig = study.draw(rows)
    assert fig.axes and len(fig.axes[0].patches) == 4
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("override, message", [
    ("station.latitude_deg=100", r"^station\.latitude_deg = 100 is out of range: must be in \[-90, 90\]$"),
    ("orbit.tle_line2=nonsense", r"^orbit\.tle_line2 = 'nonsense': must be line 2 of a two-line element set"),
    ("orbit.days=0", r"^orbit\.days = 0 is out of range"),
])
def test_bad_settings_are_refused_in_one_line_naming_the_key(override, message):
    with pytest.raises(ValidationError, match=message) as err:
        cli.prepare(cli.compose("experiment=key_per_day", override))
    assert "\n" not in str(err.value)
