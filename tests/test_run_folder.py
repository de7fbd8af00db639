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


def _chunks(n, per=2, then=None):
    """n chunks of ``per`` rows each; ``then(i)`` runs before chunk i is made."""
    for i in range(n):
        if then is not None:
            then(i)
        yield Chunk(_rows([float(per * i + k) for k in range(per)]), i, n)


def test_results_grow_by_appends_and_keep_what_is_on_disk(tmp_path):
    seen = []

    def look(i):
        if i:
            seen.append((tmp_path / "results.csv").read_bytes())

    studies.execute(_study(None), _chunks(4, then=look), tmp_path, progress=False, figure=False)
    final = (tmp_path / "results.csv").read_bytes()
    assert all(final.startswith(before) for before in seen) and len(set(map(len, seen))) == 3
    assert [r["length_km"] for r in read_results(tmp_path)] == [float(x) for x in range(8)]


def test_a_last_line_cut_short_is_left_out(tmp_path):
    (tmp_path / "results.csv").write_text("length_km,key_rate\n1.0,0.5\n2.0,0.2")
    assert read_results(tmp_path) == [{"length_km": 1.0, "key_rate": 0.5}]


def test_sigterm_mid_run_marks_the_folder_interrupted_and_keeps_finished_chunks(tmp_path):
    import os
    import signal

    def kill(i):
        if i == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # as `timeout` or a batch system's time limit

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(studies.Interrupted) as info:
        studies.execute(_study(None), _chunks(5, then=kill), tmp_path, progress=False)
    assert info.value.signum == signal.SIGTERM and isinstance(info.value, KeyboardInterrupt)
    meta = read_metadata(tmp_path)
    assert meta["status"] == "interrupted" and meta["error"] == "stopped by SIGTERM"
    assert meta["chunks_done"] == 2 and meta["rows"] == 4 and len(read_results(tmp_path)) == 4
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back


def test_an_iterator_that_yields_nothing_is_refused(tmp_path):
    from qmc import ValidationError

    spent = _chunks(1)
    list(spent)
    with pytest.raises(ValidationError, match="already consumed"):
        studies.execute(_study(None), spent, tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()  # refused before anything is written
    with pytest.raises(ValidationError, match="yielded nothing"):
        studies.execute(_study(None), iter([]), tmp_path / "b", progress=False)
    meta = read_metadata(tmp_path / "b")
    assert meta["status"] == "failed" and "yielded nothing" in meta["error"]


def test_progress_lines_go_to_the_log_at_a_steady_interval(tmp_path, caplog):
    import logging
    import time

    caplog.set_level(logging.INFO, logger="qmc")
    studies.execute(_study(None), _chunks(4, then=lambda i: time.sleep(0.15)), tmp_path, progress=False,
                    figure=False, progress_interval_s=0.05)
    lines = [r.getMessage() for r in caplog.records if r.name == "qmc"]
    assert any(line.startswith("toy: first chunk of 4 done") and "at most about" in line for line in lines)
    assert any("/4 chunks" in line and "rows/s" in line and "left" in line for line in lines)
    assert sum("first chunk running" in line or "/4 chunks" in line for line in lines) >= 4


def test_a_run_too_large_to_hold_draws_no_figure(tmp_path, monkeypatch):
    from qmc.studies import run_folder

    monkeypatch.setattr(run_folder, "FIGURE_ROWS", 3)
    meta = studies.execute(_study(None), _chunks(3), tmp_path, progress=False)
    assert meta["status"] == "complete" and meta["figures"] == [] and "qmc-plot" in meta["figure_note"]
    assert meta["rows"] == 6


def test_a_sweep_over_max_points_is_refused_before_it_starts():
    from qmc import ValidationError, cli

    with pytest.raises(ValidationError, match=r"sweep.length_km: 10,000,001 points is more than sweep.max_points = 10000000"):
        cli.prepare(cli.compose("sweep.length_km.step=2e-5"))
    with pytest.raises(ValidationError, match="sweep.max_points = 1000"):
        cli.prepare(cli.compose("sweep.max_points=1000", "sweep.length_km.step=0.1"))
    cli.prepare(cli.compose("sweep.max_points=2001", "sweep.length_km.step=0.1"))  # 2001 points: accepted


def test_chunks_are_sized_from_the_work_per_point_and_balanced():
    from qmc.sweep import auto_chunk_size, grid_evaluations

    assert grid_evaluations(500) == 67 and grid_evaluations(10) == 10 and grid_evaluations(500, exhaustive=True) == 500
    size = auto_chunk_size(100_001, 3 * 67 + 2, "cpu")
    n_chunks = -(-100_001 // size)
    assert 5 <= n_chunks <= 20 and n_chunks * size - 100_001 < n_chunks  # equal chunks, little padding
    assert auto_chunk_size(201, 203, "cpu") == 201  # a short sweep in one call
    assert auto_chunk_size(100_001, 203, "gpu") > size  # accelerators take more per call
