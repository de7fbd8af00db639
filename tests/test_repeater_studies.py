"""Studies repeater_chain and memory_requirements (qmc.studies.repeaters): composition through the
command's config, columns, the physics the defaults are chosen to show, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

import qmc
from qmc import cli
from qmc.repeaters import Chain, Memory
from qmc.studies.repeaters import REPEATER_COLUMNS, REQUIREMENT_COLUMNS, required_coherence
from qmc.studies.settings import RepeaterMCSettings

REQUIRED = ("length_km", "n_links", "mean_attempts", "mean_attempts_stderr", "mean_time_s", "rate_pairs_per_s",
            "fidelity", "fidelity_stderr", "key_rate_bps", "plob_bps")


def prepare(*overrides):
    return cli.prepare(cli.compose(*overrides))


def rows_of(chunks):
    return [row for chunk in chunks for row in chunk.rows]


@pytest.fixture(scope="module")
def chain_rows():
    """The defaults of repeater_chain at the first and last distance of its grid, 1 and 8 links."""
    study, spec, _ = prepare("experiment=repeater_chain")
    lengths = spec["sweep"].axis("length_km")
    ends = f"[{lengths[0]},{lengths[-1]}]"
    _, spec, chunks = prepare("experiment=repeater_chain", f"sweep.length_km.values={ends}",
                              "sweep.n_links.values=[1,8]", "mc.n_chains=2000")
    return spec, float(lengths[-1]), rows_of(chunks)


def test_experiments_compose_build_and_validate():
    for name, columns in (("repeater_chain", REPEATER_COLUMNS), ("memory_requirements", REQUIREMENT_COLUMNS)):
        study, spec, chunks = prepare(f"experiment={name}")
        assert study.name == name and study.columns == columns
        assert isinstance(spec["chain"], Chain) and isinstance(spec["memory"], Memory)
        assert isinstance(spec["mc"], RepeaterMCSettings)
        assert hasattr(chunks, "__next__")  # validated, nothing compiled yet
    _, spec, _ = prepare("experiment=repeater_chain")
    np.testing.assert_array_equal(spec["sweep"].axis("n_links"), [1, 2, 4, 8])


def test_columns_are_exact_and_no_nan(chain_rows):
    _, _, rows = chain_rows
    assert REPEATER_COLUMNS[:len(REQUIRED)] == REQUIRED
    assert len(rows) == 4
    for row in rows:
        assert tuple(row) == REPEATER_COLUMNS
        assert all(not (isinstance(v, float) and math.isnan(v)) for v in row.values()), row
        assert row["n_abandoned"] == 0


def test_eight_links_beat_plob_at_the_longest_default_distance(chain_rows):
    _, longest, rows = chain_rows
    assert longest == 500.0
    row = next(r for r in rows if r["n_links"] == 8 and r["length_km"] == longest)
    assert row["key_rate_bps"] > 1e3 * row["plob_bps"] > 0.0
    direct = next(r for r in rows if r["n_links"] == 1 and r["length_km"] == longest)
    assert direct["key_rate_bps"] < direct["plob_bps"]  # the direct heralded link never does


def test_one_link_rate_is_the_direct_success_rate(chain_rows):
    spec, _, rows = chain_rows
    for row in (r for r in rows if r["n_links"] == 1):
        link = Chain(**{**{f: getattr(spec["chain"], f) for f in ("p_link", "link_fidelity", "swap_probability",
                                                                   "loss_db_per_km", "coupling_efficiency",
                                                                   "detector_efficiency", "p_dark",
                                                                   "herald_fidelity")},
                        "n_links": 1, "length_km": row["length_km"]})
        p = float(link.success_probability())
        assert abs(row["mean_attempts"] - 1.0 / p) < 5.0 * row["mean_attempts_stderr"]
        expected_rate = p / float(link.attempt_time_s())
        rel = row["mean_attempts_stderr"] / row["mean_attempts"]
        assert abs(row["rate_pairs_per_s"] / expected_rate - 1.0) < 5.0 * rel
        assert math.isclose(row["fidelity"], float(link.fidelity()), rel_tol=1e-9)  # no memory waits


def test_memory_requirements_threshold_falls_with_more_links_and_rises_with_distance():
    _, _, chunks = prepare("experiment=memory_requirements", "sweep.n_links.values=[2,4]",
                           "sweep.length_km.values=[300,500]", "sweep.coherence_time_s.num=13", "mc.n_chains=1000")
    rows = rows_of(chunks)
    assert all(tuple(r) == REQUIREMENT_COLUMNS for r in rows)
    need = {(r["length_km"], r["n_links"]): r["required_coherence_s"] for r in rows}
    assert need[(300.0, 4)] is not None and need[(300.0, 2)] is not None
    assert need[(300.0, 4)] < need[(300.0, 2)]          # more links: shorter waits per memory
    assert need[(500.0, 4)] is not None and need[(500.0, 4)] > need[(300.0, 4)]
    for (L, n), t in need.items():  # above the threshold every point beats PLOB, below it one does not
        group = sorted((r for r in rows if (r["length_km"], r["n_links"]) == (L, n)),
                       key=lambda r: r["coherence_time_s"])
        if t is not None:
            assert all(r["beats_plob"] for r in group if r["coherence_time_s"] >= t)
            below = [r for r in group if r["coherence_time_s"] < t]
            assert not below or not below[-1]["beats_plob"]
        fid = [r["fidelity"] for r in group]  # longer coherence, better pairs (common random numbers)
        assert fid[-1] > fid[0]


def test_required_coherence_is_where_beating_starts_for_good():
    assert required_coherence([1, 10, 100, 1000], [False, True, False, True]) == 1000.0
    assert required_coherence([1, 10, 100], [False, True, True]) == 10.0
    assert required_coherence([1, 10], [True, False]) is None


BAD = [
    ("memory.efficiency=2", "memory.efficiency = 2"),
    ("chain.swap_probability=0", "chain.swap_probability = 0"),
    ("mc.n_chains=1", "mc.n_chains = 1 is out of range"),
    ("sweep.n_links.values=[3]", "sweep.n_links = 3"),  # with chain.policy=nested below
    ("sweep.length_km.values=[0,100]", "sweep.length_km = 0 is out of range"),
]


@pytest.mark.parametrize(("override", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_value_is_refused_in_one_line_naming_the_key(override, message):
    extra = ["chain.policy=nested"] if "n_links" in override else []
    with pytest.raises(qmc.ValidationError) as info:
        prepare("experiment=repeater_chain", override, *extra)
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_memory_requirements_refuses_an_unknown_parameter():
    with pytest.raises(qmc.ValidationError, match=r"^requirements.parameter = 'cutoff_s': must be one of"):
        prepare("experiment=memory_requirements", "requirements.parameter=cutoff_s")
