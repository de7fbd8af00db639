"""The run folder: a study's chunks written as they finish (results.csv, metadata.json, the figure)."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from qmc import results
from qmc.studies.plan import ChunkPlan
from qmc.studies.registry import Chunk, Study
from qmc.validation import ValidationError

__all__ = ["execute", "Interrupted", "FIGURE_ROWS", "finished_chunks", "resumable"]

log = logging.getLogger("qmc")

FIGURE_ROWS = 1_000_000  # rows kept in memory for the figure; a larger run is drawn with qmc-plot

# Signals that end a run like Ctrl-C: what `timeout`, `kill` and a batch system's time limit send,
# and a closed terminal.
_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal (SIGTERM, SIGHUP; Ctrl-C raises KeyboardInterrupt itself)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread (where the
    run loop is), so a killed run ends like an interrupted one; the previous handlers come back
    after. Elsewhere than the main thread Python cannot take signals: nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupted(signum, frame):
        raise Interrupted(signum)

    previous = {s: signal.signal(s, raise_interrupted) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class _Progress:
    """Progress lines in the log (qmc.log under the command) every ``interval_s`` seconds, on or
    off a terminal: chunks done, rows, rows per second and the time left (from the chunks after
    the first, whose time includes compilation)."""

    def __init__(self, name: str, interval_s: float | None):
        self.name, self.interval_s = name, interval_s
        self.start = time.perf_counter()
        self.first_done = None  # (time, rows) when the first chunk finished
        self.done = self.total = self.rows = 0
        self._stop = threading.Event()
        self._thread = None
        if interval_s:
            self._thread = threading.Thread(target=self._beat, name="qmc-progress", daemon=True)
            self._thread.start()

    def chunk(self, chunk: Chunk, n_rows: int) -> None:
        self.done, self.total, self.rows = chunk.index + 1, chunk.total, n_rows
        if self.first_done is None:
            self.first_done = (time.perf_counter(), n_rows)
            log.info("%s: first chunk of %d done in %s (compilation included), %d rows%s", self.name, self.total,
                     _duration(self.first_done[0] - self.start), n_rows,
                     f"; at most about {_duration(self.left())} left" if self.total > 1 else "")

    def left(self) -> float:
        """Seconds left: the mean time of the chunks after the first (or of the first)."""
        now = time.perf_counter()
        if self.done > 1:
            per_chunk = (now - self.first_done[0]) / (self.done - 1)
        else:
            per_chunk = now - self.start
        return per_chunk * max(self.total - self.done, 0)

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        if not self.done:
            return f"{self.name}: first chunk running ({_duration(elapsed)}, compilation included)"
        rate = ""
        if self.done > 1:
            rate = f", {(self.rows - self.first_done[1]) / (time.perf_counter() - self.first_done[0]):,.0f} rows/s"
        return (f"{self.name}: {self.done}/{self.total} chunks, {self.rows:,} rows{rate}, "
                f"{_duration(elapsed)} so far, about {_duration(self.left())} left")

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            log.info(self.line())

    def close(self) -> None:
        self._stop.set()


def _refuse_spent(chunks: Iterable[Chunk]) -> None:
    """A study's iterator that cannot yield anything, refused before any file is written."""
    if inspect.isgenerator(chunks) and inspect.getgeneratorstate(chunks) == inspect.GEN_CLOSED:
        raise ValidationError("chunks: this iterator was already consumed (a study's iterator runs once: "
                              "call study.run(spec) again for a new one)")
    if isinstance(chunks, (list, tuple)) and not chunks:
        raise ValidationError("chunks: empty (the study yielded nothing)")


def _same_run(previous: Mapping[str, Any], study: Study, meta: Mapping[str, Any]) -> str | None:
    """Why the run recorded in ``previous`` (an earlier metadata.json) cannot be resumed as the
    run ``meta`` describes, or None when it can: the same study, config and shard."""
    if previous.get("study") != study.name:
        return f"it holds a run of study {previous.get('study')}, not {study.name}"
    if "chunks" not in previous:
        return "its metadata.json does not record which chunks it finished"
    for key, what in (("config_digest", "config"), ("shard", "shard")):
        if previous.get(key) != meta.get(key):
            return (f"its {what} differs ({key} {previous.get(key)} there, {meta.get(key)} now): resume only the "
                    "same command")
    return None


def resumable(run_dir: str | Path, study: Study, metadata: Mapping[str, Any]) -> dict:
    """The metadata of the run in ``run_dir`` that a run of ``study`` described by ``metadata``
    (its ``config_digest`` and ``shard``) resumes: {} when the folder holds no run.

    Raises:
        ValidationError: the folder holds a run of another study, config or shard.
    """
    previous = results.read_metadata(run_dir)
    if previous.get("chunks"):
        why = _same_run(previous, study, metadata)
        if why:
            raise ValidationError(f"resume: {run_dir} cannot be resumed: {why}")
        return previous
    return {}


def finished_chunks(run_dir: str | Path) -> dict:
    """The finished chunks recorded in a run folder's metadata.json: chunk number -> rows, in the
    order of results.csv ({} when none is recorded)."""
    return {int(c): int(n) for c, n in results.read_metadata(run_dir).get("chunks", [])}


def execute(
    study: Study,
    chunks: Iterable[Chunk],
    run_dir: str | Path,
    metadata: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    figure: bool = True,
    published: list | None = None,
    title: str | None = None,
    dpi: int = 300,
    progress_interval_s: float | None = 10.0,
    plan: ChunkPlan | None = None,
    resume: bool = False,
) -> dict:
    """Run ``chunks`` of ``study`` into ``run_dir``: results.csv, metadata.json and the figure.

    Each chunk is appended to ``results.csv`` as it finishes and ``metadata.json`` follows it
    (status ``running``, then ``complete``, ``interrupted`` or ``failed``), so an interrupted run
    keeps every finished chunk: Ctrl-C, SIGTERM and SIGHUP (``timeout``, ``kill``, a batch
    system's time limit) interrupt the run the same way (:class:`Interrupted`, a
    ``KeyboardInterrupt``, is raised after the folder is marked). Progress lines go to the
    ``qmc`` logger every ``progress_interval_s``. The figure (PNG + PDF) is drawn once the sweep
    is complete, unless the study says these rows make none, or they are more than
    :data:`FIGURE_ROWS` (``figure_note`` in metadata.json says why; ``qmc-plot`` draws it).

    Args:
        study: the registered study (columns, figure).
        chunks: what ``study.run(spec)`` (or a study function) returned; an iterator that
            yields nothing is refused.
        run_dir: output folder (created if needed).
        metadata: extra entries for metadata.json (experiment name, seed, overrides, ...).
        progress: show a progress bar over chunks (None: only on a terminal).
        figure: draw and save the figure at the end.
        published: published points the figure overlays (:func:`qmc.gallery.published_points`).
        title: what distinguishes this run's figure (system, model, analysis settings), drawn
            above it.
        dpi: resolution of the PNG.
        progress_interval_s: seconds between progress lines in the log (None: none).
        plan: the chunks this run keeps (a shard of a split sweep, :class:`ChunkPlan`); the
            others are not written (a study that asks :func:`qmc.studies.plan.wants` does not
            compute them either). ``metadata.json`` records each written chunk's number and rows
            (``chunks``), which ``resume`` and ``qmc-merge`` read. With ``resume``, ``plan.done``
            is filled from the folder.
        resume: continue the run already in ``run_dir`` when it is of the same study, config
            (``metadata["config_digest"]``) and shard: its finished chunks are kept (results.csv
            cut to their rows) and only the others computed; a folder without a run starts
            afresh, one of another run is refused.

    Returns:
        The final metadata.

    Raises:
        ValidationError: ``chunks`` yields nothing (an iterator already consumed); ``resume``
            onto a folder holding a different run.
        Interrupted, KeyboardInterrupt: the run was stopped; its folder says ``interrupted``.
    """
    from tqdm.auto import tqdm

    _refuse_spent(chunks)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = plan or ChunkPlan()
    import jax

    from qmc._devices import local_devices

    meta = {
        "study": study.name,
        "devices": {"count": len(local_devices()), "kind": jax.default_backend()},  # what devices=None means here
        **dict(metadata or {}),
        **results.environment(),
        "status": "running",
        "started": results.now_iso(),
        "finished": None,
        "wall_time_s": None,
        "rows": 0,
        "chunks_done": 0,
        "chunks_total": None,
        "chunks": [],  # [chunk number, rows] of each chunk in results.csv, in its order
        "figures": [],
    }
    if int(plan.shard_count) > 1:
        meta["shard"] = {"count": int(plan.shard_count), "index": int(plan.shard_index)}
    name = str(meta.get("experiment_name", study.name))
    previous = resumable(run_dir, study, meta) if resume else {}
    if previous:
        if previous.get("status") == "complete":
            log.info("%s: %s is complete already; nothing to resume", name, run_dir)
            return previous
        kept = [(int(c), int(n)) for c, n in previous["chunks"]]
        try:
            table = results.ResultsTable.reopen(run_dir / results.RESULTS, study.columns, sum(n for _, n in kept))
        except (OSError, ValueError) as err:  # a results.csv that does not hold what metadata.json says
            raise ValidationError(f"resume: {run_dir} cannot be resumed: {err}") from None
        plan = dataclasses.replace(plan, done=plan.done | {c for c, _ in kept})
        meta.update(chunks=[list(c) for c in kept], rows=table.n_rows, chunks_done=len(kept),
                    chunks_total=previous.get("chunks_total"), resumed={"rows": table.n_rows, "chunks": len(kept)})
        log.info("%s: resuming %s with %d finished chunks (%d rows)", name, run_dir, len(kept), table.n_rows)
    else:
        table = results.ResultsTable(run_dir / results.RESULTS, study.columns)  # the header: it exists from the start
    results.write_json(run_dir / results.METADATA, meta)
    rows: list | None = [] if not plan.done else None  # a resumed run's figure is drawn from results.csv
    start = time.perf_counter()
    bar = tqdm(desc=name, unit="chunk", disable=None if progress is None else not progress, leave=False)
    beat = _Progress(name, progress_interval_s)
    try:
        with _signals_interrupt():
            for chunk in chunks:
                if not plan.wants(chunk.index):
                    continue  # another shard's, or finished before: computed by a study that builds on it
                table.append(chunk.rows)
                if rows is not None:
                    rows.extend(chunk.rows)
                    if len(rows) > FIGURE_ROWS:
                        rows = None
                bar.total = len(plan.owned(chunk.total))
                bar.update(1)
                meta["chunks"].append([int(chunk.index), len(chunk.rows)])
                beat.chunk(dataclasses.replace(chunk, index=len(meta["chunks"]) - 1, total=bar.total), table.n_rows)
                meta.update(rows=table.n_rows, chunks_done=len(meta["chunks"]), chunks_total=chunk.total,
                            wall_time_s=round(time.perf_counter() - start, 3))
                results.write_json(run_dir / results.METADATA, meta)
            if not meta["chunks_done"] and plan.trivial:
                raise ValidationError("chunks: the study yielded nothing (an iterator already consumed?)")
    except BaseException as err:
        stopped = isinstance(err, KeyboardInterrupt)
        meta.update(status="interrupted" if stopped else "failed",
                    error=(f"stopped by {err}" if isinstance(err, Interrupted) else None) if stopped
                    else f"{type(err).__name__}: {err}",
                    finished=results.now_iso(), wall_time_s=round(time.perf_counter() - start, 3))
        results.write_json(run_dir / results.METADATA, meta)
        raise
    finally:
        beat.close()
        bar.close()
    if rows is None and table.n_rows <= FIGURE_ROWS:
        rows = results.read_results(run_dir)  # a resumed run: the kept chunks' rows and the new ones
    skip = None
    if figure and int(plan.shard_count) > 1:
        skip = "one shard of a split sweep: qmc-merge draws the figure of the merged run"
    elif figure and rows is None:
        skip = f"more than {FIGURE_ROWS:,} rows: draw the figure from results.csv with qmc-plot"
    elif figure and study.no_figure is not None:
        skip = study.no_figure(rows)
    if skip:
        meta["figure_note"] = skip
        log.info("no figure: %s", skip)
    elif figure and rows:
        import matplotlib.pyplot as plt

        from qmc.plots import save

        fig = study.draw(rows, published=published, title=title)
        meta["figures"] = [p.name for p in save(fig, run_dir / study.figure_name, dpi=dpi)]
        plt.close(fig)
    meta.update(status="complete", finished=results.now_iso(), wall_time_s=round(time.perf_counter() - start, 3))
    results.write_json(run_dir / results.METADATA, meta)
    return meta
