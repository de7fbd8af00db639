"""The run folder: a study's chunks written as they finish (results.csv, metadata.json, the figure)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from qmc import results
from qmc.studies.registry import Chunk, Study

__all__ = ["execute"]

log = logging.getLogger("qmc")


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
) -> dict:
    """Run ``chunks`` of ``study`` into ``run_dir``: results.csv, metadata.json and the figure.

    ``results.csv`` is rewritten atomically after every chunk and ``metadata.json`` follows it
    (status ``running``, then ``complete``, ``interrupted`` or ``failed``), so an interrupted run
    keeps every finished chunk. The figure (PNG + PDF) is drawn once the sweep is complete, unless
    the study says these rows make none (``figure_note`` in metadata.json says why).

    Args:
        study: the registered study (columns, figure).
        chunks: what ``study.run(spec)`` (or a study function) returned.
        run_dir: output folder (created if needed).
        metadata: extra entries for metadata.json (experiment name, seed, overrides, ...).
        progress: show a progress bar over chunks (None: only on a terminal).
        figure: draw and save the figure at the end.
        published: published points the figure overlays (:func:`qmc.gallery.published_points`).
        title: what distinguishes this run's figure (system, model, analysis settings), drawn
            above it.
        dpi: resolution of the PNG.

    Returns:
        The final metadata.
    """
    from tqdm.auto import tqdm

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "study": study.name,
        **dict(metadata or {}),
        **results.environment(),
        "status": "running",
        "started": results.now_iso(),
        "finished": None,
        "wall_time_s": None,
        "rows": 0,
        "chunks_done": 0,
        "chunks_total": None,
        "figures": [],
    }
    table = results.ResultsTable(run_dir / results.RESULTS, study.columns)
    table.append([])  # the header: results.csv exists from the start
    results.write_json(run_dir / results.METADATA, meta)
    rows: list = []
    start = time.perf_counter()
    bar = tqdm(desc=str(meta.get("experiment_name", study.name)), unit="chunk", disable=None if progress is None
               else not progress, leave=False)
    try:
        for chunk in chunks:
            table.append(chunk.rows)
            rows.extend(chunk.rows)
            bar.total = chunk.total
            bar.update(1)
            meta.update(rows=table.n_rows, chunks_done=chunk.index + 1, chunks_total=chunk.total,
                        wall_time_s=round(time.perf_counter() - start, 3))
            results.write_json(run_dir / results.METADATA, meta)
    except BaseException as err:
        meta.update(status="interrupted" if isinstance(err, KeyboardInterrupt) else "failed",
                    error=None if isinstance(err, KeyboardInterrupt) else f"{type(err).__name__}: {err}",
                    finished=results.now_iso(), wall_time_s=round(time.perf_counter() - start, 3))
        results.write_json(run_dir / results.METADATA, meta)
        raise
    finally:
        bar.close()
    skip = study.no_figure(rows) if figure and rows and study.no_figure is not None else None
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
