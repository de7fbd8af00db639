"""The run folder (qmc.studies.execute) and a study's jobs in threads (qmc.studies.threads)."""

from __future__ import annotations

import threading

import pytest

from qmc import studies
from qmc.results import read_metadata, read_results
from qmc.studies import Chunk, Study, threads


def test_ordered_yields_in_order_and_runs_jobs_side_by_side():
    barrier = threading.Barrier(2, timeout=10)  # both jobs must run at once to pass it

    def job(x):
        if x < 2:
            barrier.wait()
        return x * x

    assert list(threads.ordered(job, range(5), workers=2)) == [0, 1, 4, 9, 16]


def test_ordered_raises_a_job_error_where_its_result_is_taken():
    def job(x):
        if x == 1:
            raise ValueError("job 1 failed")
        return x

    out = threads.ordered(job, [0, 1, 2], workers=2)
    assert next(out) == 0
    with pytest.raises(ValueError, match="job 1 failed"):
        next(out)


def test_ordered_runs_one_item_in_the_callers_thread():
    assert list(threads.ordered(lambda _: threading.current_thread().name, ["a"])) == [threading.current_thread().name]


def _rows(lengths):
    return [{"length_km": x, "key_rate": 0.1} for x in lengths]


def _study(no_figure):
    return Study(name="toy", run=lambda spec: iter(()), columns=("length_km", "key_rate"),
                 figure="qmc.plots.keyrate:key_rate_vs_distance", figure_name="toy", no_figure=no_figure)


def test_a_study_may_say_its_rows_make_no_figure(tmp_path):
    study = _study(lambda rows: "one length" if len(rows) < 2 else None)
    meta = studies.execute(study, iter([Chunk(_rows([50.0]), 0, 1)]), tmp_path, progress=False)
    assert meta["status"] == "complete" and meta["figures"] == [] and meta["figure_note"] == "one length"
    assert read_metadata(tmp_path)["figure_note"] == "one length" and len(read_results(tmp_path)) == 1
    assert not list(tmp_path.glob("toy.*"))
