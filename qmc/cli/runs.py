"""Commands on finished run folders: ``qmc-plot`` redraws a run's figure, ``qmc-merge`` joins the
pieces of a sweep split across jobs into one run folder.

A run folder records in ``metadata.json`` which chunks of its study's sweep it holds, in the order
of ``results.csv`` (``chunks``: chunk number and rows), the digest of its config without the keys
that only choose chunks (``config_digest``) and its shard (``shard``). The pieces of one sweep
(``qmc -m sweep.shard_count=4 sweep.shard_index=0,1,2,3``) share the digest; ``qmc-merge`` checks
that, puts their chunks back in order and writes the folder the unsplit run would have written:
the same ``results.csv``, its config, metadata and figure.

Examples:
    qmc-plot results/decoy_bb84_gys/<timestamp>
    qmc-merge results/multirun/decoy_bb84_gys/<timestamp>/sweep.shard_index=* --out results/merged
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path
from typing import NoReturn

__all__ = ["plot_main", "merge_main", "merge", "MergeError"]


class MergeError(ValueError):
    """Run folders that cannot be merged (another sweep, a chunk missing or twice)."""


def _fail(message: str, prog: str) -> NoReturn:
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(2)


def _draw(run_dir: Path, study, meta: dict, rows: list, stem: Path | None = None) -> list[Path]:
    from qmc.gallery import published_points
    from qmc.plots import save

    fig = study.draw(rows, published=published_points(meta.get("published")), title=meta.get("title"))
    paths = save(fig, stem or run_dir / study.figure_name, dpi=int(meta.get("dpi") or 300))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return list(paths)


# ---------------------------------------------------------------------------------------------
# qmc-plot
# ---------------------------------------------------------------------------------------------


def plot_main(argv: list[str] | None = None) -> None:
    """Entry point of ``qmc-plot <run dir>``: redraw a run's figure from its ``results.csv``."""
    parser = argparse.ArgumentParser(
        prog="qmc-plot", description="Redraw the figure of a qmc run from its saved results.csv."
    )
    parser.add_argument("run_dir", type=Path, help="a run folder (holding results.csv)")
    parser.add_argument("--study", help="study whose figure to draw (default: from metadata.json)")
    parser.add_argument("-o", "--output", type=Path, help="file stem (default: <run_dir>/<figure name>)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")

    from qmc import studies
    from qmc.results import RESULTS, read_metadata, read_results

    if not (args.run_dir / RESULTS).is_file():
        _fail(f"{args.run_dir / RESULTS}: no such file", "qmc-plot")
    meta = read_metadata(args.run_dir)
    name = args.study or meta.get("study", "key_rate_vs_distance")
    try:
        study = studies.get(name)
    except ValueError as err:
        _fail(str(err), "qmc-plot")
    rows = read_results(args.run_dir)
    if not rows:
        _fail(f"{args.run_dir / RESULTS}: no rows to plot", "qmc-plot")
    for path in _draw(args.run_dir, study, meta, rows, args.output):
        print(path)


# ---------------------------------------------------------------------------------------------
# qmc-merge
# ---------------------------------------------------------------------------------------------


def _pieces(run_dir: Path) -> tuple[dict, list[str], dict[int, list[list[str]]]]:
    """(metadata, header, chunk number -> its raw CSV rows) of one run folder."""
    from qmc.results import METADATA, RESULTS, read_metadata

    if not (run_dir / RESULTS).is_file() or not (run_dir / METADATA).is_file():
        raise MergeError(f"{run_dir}: not a run folder (no {RESULTS} and {METADATA})")
    meta = read_metadata(run_dir)
    if "chunks" not in meta or "config_digest" not in meta:
        raise MergeError(f"{run_dir}: its {METADATA} does not record its chunks and config (made by an older qmc)")
    text = (run_dir / RESULTS).read_text(encoding="utf-8")
    lines = list(csv.reader(io.StringIO(text[: text.rfind("\n") + 1], newline="")))
    header, body = lines[0], lines[1:]
    by_chunk, at = {}, 0
    for number, n_rows in meta["chunks"]:
        if at + int(n_rows) > len(body):
            raise MergeError(f"{run_dir}: {RESULTS} holds fewer rows than its chunks recorded")
        by_chunk[int(number)] = body[at: at + int(n_rows)]
        at += int(n_rows)
    return meta, header, by_chunk


def merge(run_dirs: list[Path], out: Path) -> dict:
    """Merge the run folders of one split sweep into ``out`` (a new or empty folder): results.csv
    with every chunk in order, config.yaml with the unsplit sweep, metadata.json and the figure.

    Returns:
        The merged metadata.

    Raises:
        MergeError: folders of different studies or configs, a chunk missing or in two folders,
            an ``out`` that holds anything.
    """
    from qmc import studies
    from qmc.results import METADATA, RESULTS, environment, now_iso, read_results, write_json, write_text

    if not run_dirs:
        raise MergeError("no run folders to merge")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MergeError(f"--out {out}: exists and is not empty (merge into a new folder)")
    pieces = [(d, *_pieces(d)) for d in run_dirs]
    first_dir, first, header, _ = pieces[0]
    chunks: dict[int, tuple[Path, list]] = {}
    for run_dir, meta, head, by_chunk in pieces:
        for key in ("study", "config_digest", "chunks_total"):
            if meta.get(key) != first.get(key):
                raise MergeError(f"{run_dir}: another sweep than {first_dir} ({key} {meta.get(key)} against "
                                 f"{first.get(key)}); merge only the pieces of one command")
        if head != header:
            raise MergeError(f"{run_dir}: its columns differ from those of {first_dir}")
        for number, rows in by_chunk.items():
            if number in chunks:
                raise MergeError(f"chunk {number} is in both {chunks[number][0]} and {run_dir}")
            chunks[number] = (run_dir, rows)
    total = first.get("chunks_total")
    if total is None:
        raise MergeError(f"{first_dir}: its number of chunks is not recorded (it finished none)")
    missing = sorted(set(range(int(total))) - set(chunks))
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (", ..." if len(missing) > 20 else "")
        raise MergeError(f"chunks {shown} of {total} are in none of the folders: finish those shards "
                         "(run them again with resume=true) and merge again")
    study = studies.get(first["study"])
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    n_rows = 0
    for number in range(int(total)):
        writer.writerows(chunks[number][1])
        n_rows += len(chunks[number][1])
    write_text(out / RESULTS, buffer.getvalue())
    config = first_dir / "config.yaml"
    if config.is_file():
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(config)
        if "sweep" in cfg:
            cfg.sweep.shard_count, cfg.sweep.shard_index = 1, 0
        write_text(out / "config.yaml", OmegaConf.to_yaml(cfg))
    keep = ("study", "experiment_name", "title", "published", "seed", "dpi", "config_digest", "devices")
    meta = {**{k: first[k] for k in keep if k in first}, **environment(),
            "status": "complete", "merged_from": [str(d) for d in run_dirs], "finished": now_iso(),
            "rows": n_rows, "chunks_done": int(total), "chunks_total": int(total),
            "chunks": [[c, len(chunks[c][1])] for c in range(int(total))], "figures": []}
    rows = read_results(out / RESULTS)
    note = study.no_figure(rows) if study.no_figure is not None else None
    if note:
        meta["figure_note"] = note
    elif rows:
        meta["figures"] = [p.name for p in _draw(out, study, meta, rows)]
    write_json(out / METADATA, meta)
    return meta


def merge_main(argv: list[str] | None = None) -> None:
    """Entry point of ``qmc-merge <run folders> --out <folder>``."""
    parser = argparse.ArgumentParser(
        prog="qmc-merge",
        description="Join the run folders of a sweep split across jobs (sweep.shard_count, sweep.shard_index) "
                    "into one run folder, as the unsplit run would have written it.",
    )
    parser.add_argument("run_dirs", type=Path, nargs="+", help="the pieces' run folders")
    parser.add_argument("--out", type=Path, required=True, help="the merged run folder (new or empty)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        meta = merge(args.run_dirs, args.out)
    except (MergeError, ValueError) as err:
        _fail(str(err), "qmc-merge")
    print(f"{args.out}: {meta['rows']} rows from {len(args.run_dirs)} folders")
