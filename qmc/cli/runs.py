"""Run folders beyond one run: the chunks a run computes (its shard, what a resumed run lacks) and
its config's digest; ``qmc-plot`` redraws a run's figure, ``qmc-merge`` joins the pieces of a sweep
split across jobs into one run folder.

A run folder records in ``metadata.json`` which chunks of its study's sweep it holds, in the order
of ``results.csv`` (``chunks``: chunk number and rows), the digest of its config without the keys
that only choose chunks (``config_digest``) and its shard (``shard``). The pieces of one sweep
(``qmc -m sweep.shard_count=4 sweep.shard_index=0,1,2,3``) share the digest; ``qmc-merge`` checks
that, puts their chunks back in order and writes the folder the unsplit run would have written:
the same ``results.csv``, its config, metadata and figure.

Examples:
    qmc-plot results/decoy_bb84_gys/<timestamp>
    qmc-merge results/multirun/decoy_bb84_gys/<timestamp>/*/ --out results/merged
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig, OmegaConf

__all__ = ["plot_main", "merge_main", "merge", "MergeError", "config_digest", "chunk_plan", "shard_of", "name_differences",
           "CHUNK_KEYS"]

# Keys that choose which chunks a run computes, not what they hold: left out of the config's
# digest (the shards of one sweep, the unsplit run, and a run and its resumption share it) and of
# figure titles.
CHUNK_KEYS = ("resume", "sweep.shard_index", "sweep.shard_count")


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
# Split and resumed runs
# ---------------------------------------------------------------------------------------------


def config_digest(cfg: DictConfig) -> str:
    """SHA-256 of the resolved config without :data:`CHUNK_KEYS`: what a resumed run and the
    pieces of a split sweep must share (metadata.json's ``config_digest``)."""
    import hashlib

    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    container.pop("resume", None)
    if isinstance(container.get("sweep"), dict):
        container["sweep"].pop("shard_index", None)
        container["sweep"].pop("shard_count", None)
    text = OmegaConf.to_yaml(OmegaConf.create(container), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _flat(node: Any, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def name_differences(message: str, old_config: Path, cfg: DictConfig) -> str:
    """``message`` with the keys whose values differ between the run folder's config.yaml and
    ``cfg`` in place of the config digests, where that file can be read."""
    if "config_digest" not in message or not old_config.is_file():
        return message
    old = _flat(OmegaConf.to_container(OmegaConf.load(old_config)))
    new = _flat(OmegaConf.to_container(cfg, resolve=True))
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k not in CHUNK_KEYS)
    if not keys:
        return message
    shown = ", ".join(f"{k} = {old.get(k)!r} there, {new.get(k)!r} now" for k in keys[:5])
    return message.split(": its config differs")[0] + f": its config differs ({shown}{', ...' if len(keys) > 5 else ''})"


def chunk_plan(spec: dict):
    """The chunks a run computes: the shard ``sweep.shard_index`` of ``sweep.shard_count``."""
    from qmc.studies.plan import ChunkPlan
    from qmc.studies.settings import Sweep
    from qmc.studies.spec import setting

    sweep = setting(spec, "sweep", Sweep)
    return ChunkPlan(int(sweep.shard_count), int(sweep.shard_index))


def shard_of(plan) -> dict:
    """metadata.json's ``shard`` entry of a plan ({} for an unsplit run)."""
    return {"shard": {"count": int(plan.shard_count), "index": int(plan.shard_index)}} if plan.shard_count > 1 else {}


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
