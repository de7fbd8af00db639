"""Studies: a whole computation (sweep, optimization, analyses) as plain Python, yielding rows.

A study turns built components (a :class:`qmc.Link`, a protocol, analyses, sweep settings) into
rows of a tidy table, one chunk of the sweep grid at a time, so that the caller can save each
chunk as it finishes. Studies know nothing about Hydra: the ``qmc`` command builds the components
from its config and looks the study up by name in :data:`STUDIES`; a script calls the study
function directly (see the README).

Adding a study: write a function ``run(spec) -> Iterator[Chunk]`` (``spec`` is the config with
every component built; ignore what you do not need), a figure function in :mod:`qmc.plots`, and
register both with :func:`register`; a study in its own module also adds the module's name to
:data:`STUDY_MODULES`. The CLI needs no change.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from qmc.analysis import PLOB, REASONS, NoDecoy, SinglePhoton, reason_text
from qmc.link import Link
from qmc.sweep import grid, maximize_on_grid, run
from qmc.validation import Range, ValidationError, validate

__all__ = [
    "Chunk", "Study", "STUDIES", "STUDY_MODULES", "register", "get", "names", "execute", "axis_values",
    "key_rate_vs_distance", "KEY_RATE_COLUMNS", "protocol_for",
]


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Rows of one finished chunk of a sweep grid.

    Attributes:
        rows: one dict per (sweep point, analysis variant), keys from the study's columns.
        index: 0-based chunk number.
        total: number of chunks in the whole sweep.
    """

    rows: list
    index: int
    total: int


@dataclasses.dataclass(frozen=True)
class Study:
    """A registered study: how to run it, its table columns and the figure drawn from its rows.

    Attributes:
        name: registry key (the ``study`` entry of a config).
        run: ``run(spec) -> Iterator[Chunk]``; ``spec`` maps config keys to built components and
            plain values (``link`` is added by the CLI from ``source``, ``channel``, ``detector``).
            It must raise :class:`qmc.ValidationError` for bad input before compiling anything.
        columns: column names of ``results.csv``, in order.
        figure: ``figure(rows, ax=None) -> matplotlib Figure`` (no simulation inside).
        figure_name: file stem of the saved figure (``<stem>.png`` and ``<stem>.pdf``).
    """

    name: str
    run: Callable[[Mapping[str, Any]], Iterator[Chunk]]
    columns: tuple
    figure: Callable[..., Any]
    figure_name: str


STUDIES: dict[str, Study] = {}

# Modules that register studies when imported (besides this one). A study in its own module adds
# the module here; :func:`get` and :func:`names` import them on first use, so ``import qmc``
# stays light and the command needs no change.
STUDY_MODULES: list[str] = ["qmc.finite_study", "qmc.finite_mc", "qmc.mc_study", "qmc.optimize_study",
                             "qmc.correlated_study"]


def register(study: Study) -> Study:
    """Add ``study`` to :data:`STUDIES` (a later registration of the same name replaces it)."""
    STUDIES[study.name] = study
    return study


def _load_modules() -> None:
    import importlib

    for module in STUDY_MODULES:
        importlib.import_module(module)


def names() -> list[str]:
    """Names of every registered study (importing :data:`STUDY_MODULES`)."""
    _load_modules()
    return sorted(STUDIES)


def get(name: str) -> Study:
    """The study registered as ``name`` (importing :data:`STUDY_MODULES` first).

    Raises:
        ValidationError: no such study (the message lists the known ones).
    """
    if name not in STUDIES:
        _load_modules()
    if name not in STUDIES:
        raise ValidationError(f"study = {name}: unknown; one of {', '.join(names())}")
    return STUDIES[name]


def execute(
    study: Study,
    chunks: Iterable[Chunk],
    run_dir: str | Path,
    metadata: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    figure: bool = True,
) -> dict:
    """Run ``chunks`` of ``study`` into ``run_dir``: results.csv, metadata.json and the figure.

    ``results.csv`` is rewritten atomically after every chunk and ``metadata.json`` follows it
    (status ``running``, then ``complete``, ``interrupted`` or ``failed``), so an interrupted run
    keeps every finished chunk. The figure (PNG + PDF) is drawn once the sweep is complete.

    Args:
        study: the registered study (columns, figure).
        chunks: what ``study.run(spec)`` (or a study function) returned.
        run_dir: output folder (created if needed).
        metadata: extra entries for metadata.json (experiment name, seed, overrides, ...).
        progress: show a progress bar over chunks (None: only on a terminal).
        figure: draw and save the figure at the end.

    Returns:
        The final metadata.
    """
    from tqdm.auto import tqdm

    from qmc import results

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
    if figure and rows:
        import matplotlib.pyplot as plt

        from qmc.plots import save

        fig = study.figure(rows)
        meta["figures"] = [p.name for p in save(fig, run_dir / study.figure_name)]
        plt.close(fig)
    meta.update(status="complete", finished=results.now_iso(), wall_time_s=round(time.perf_counter() - start, 3))
    results.write_json(run_dir / results.METADATA, meta)
    return meta


# --------------------------------------------------------------------------------------------
# Grid axes from plain settings
# --------------------------------------------------------------------------------------------


def axis_values(spec: Mapping[str, Any] | Sequence[float], name: str) -> np.ndarray:
    """Values of one sweep axis from plain settings.

    ``spec`` is a list of values, or a mapping: ``values`` when it is not None; else ``start`` and
    ``stop`` (both included) with ``num`` points (``spacing: linear`` or ``geometric``) or, when
    ``num`` is None, steps of ``step`` (linear only).

    Raises:
        ValidationError: malformed or out-of-range settings, named ``name``.
    """
    if isinstance(spec, Mapping) and spec.get("values") is not None:
        spec = spec["values"]
    if not isinstance(spec, Mapping):
        try:
            values = np.asarray(spec, dtype=float)
        except (TypeError, ValueError):
            raise ValidationError(f"{name} = {spec!r}: must be a list of numbers") from None
    else:
        if spec.get("start") is None or spec.get("stop") is None:
            raise ValidationError(f"{name}: give values, or start and stop with num or step")
        start, stop = float(spec["start"]), float(spec["stop"])
        spacing = spec.get("spacing") or "linear"
        if spacing not in ("linear", "geometric"):
            raise ValidationError(f"{name}.spacing = {spacing!r}: must be linear or geometric")
        if stop < start:
            raise ValidationError(f"{name}.stop = {stop:g} is out of range: must be >= {name}.start = {start:g}")
        if spec.get("num") is not None:
            num = int(spec["num"])
            if num < 1:
                raise ValidationError(f"{name}.num = {num} is out of range: must be >= 1")
            if spacing == "geometric" and start <= 0:
                raise ValidationError(f"{name}.start = {start:g} is out of range: must be > 0 for geometric spacing")
            values = np.geomspace(start, stop, num) if spacing == "geometric" else np.linspace(start, stop, num)
        elif spec.get("step") is not None and spacing == "linear":
            step = float(spec["step"])
            if not step > 0:
                raise ValidationError(f"{name}.step = {step:g} is out of range: must be > 0")
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            values = start + step * np.arange(count)
        else:
            raise ValidationError(f"{name}: give num (or step, for linear spacing)")
    if values.ndim != 1 or values.size == 0:
        raise ValidationError(f"{name}: needs at least one value")
    if not np.all(np.isfinite(values)):
        raise ValidationError(f"{name}: values must be finite")
    return values


# --------------------------------------------------------------------------------------------
# Key rate versus distance (Lo, Ma, Chen 2005, Fig. 1 and its relatives)
# --------------------------------------------------------------------------------------------

KEY_RATE_COLUMNS = (
    "length_km", "analysis", "key_rate", "key_rate_bps", "mu", "reason", "y1", "e1", "gain", "qber",
)

# Analyses whose rate does not depend on the signal intensity (no mu is optimized or reported).
_NO_SIGNAL_INTENSITY = (SinglePhoton, PLOB)


def protocol_for(analysis: Any, protocol: Any) -> Any:
    """The protocol an analysis variant is evaluated with, derived from the configured one.

    ``no_decoy`` sends signals only: one intensity ``(mu,)`` with probability 1 (the protocol's
    validity rule forbids decoys of equal intensity, and GLLP without decoys has no decoy
    classes). Every other analysis uses ``protocol`` as configured.
    """
    if isinstance(analysis, NoDecoy):
        mu = np.asarray(protocol.intensities, dtype=float)[:1]
        return dataclasses.replace(protocol, intensities=mu, probabilities=np.ones(1))
    return protocol


def _check_pair(label: str, analysis: Any, protocol: Any) -> None:
    for rule in getattr(analysis, "protocol_checks", lambda p: [])(protocol):
        message = rule.error(protocol, "protocol.")
        if message is not None:
            raise ValidationError(f"{message} (analysis {label})")


# Among zero rates, prefer the reason closest to a key, so that a zero-rate row reports why the
# best intensity fails rather than why the worst one does (other reasons rank in the middle).
_ZERO_RATE_PENALTY = {
    "ok": 0.0,
    "error rate too high: key rate not positive": 1.0,
    "single-photon bound not positive": 2.0,
    "not finite": 3.0,
    "no detections": 4.0,
    "invalid parameters": 5.0,
}


def _score(out: Any) -> Any:
    penalty = jnp.asarray([_ZERO_RATE_PENALTY.get(text, 2.5) for text in REASONS])[out.reason]
    return jnp.where(out.rate > 0, out.rate, -penalty)


def key_rate_vs_distance(
    link: Link,
    protocol: Any,
    analyses: Mapping[str, Any],
    lengths_km: Sequence[float],
    mu_grid: Sequence[float] | None = None,
    chunk_size: int | None = 50,
) -> Iterator[Chunk]:
    """Key rate of each analysis variant versus fiber length, signal intensity optimized.

    At every length, each analysis that depends on the signal intensity is maximized over
    ``mu_grid`` (``protocol.intensities[0]`` is replaced; decoys stay as configured). The whole
    grid of lengths is cut into chunks; each chunk is one ``jit(vmap(...))`` call covering every
    analysis and every mu, so the sweep compiles once.

    Args:
        link: the link; its channel must have a ``length_km`` leaf (a :class:`qmc.Fiber`).
        protocol: the configured :class:`qmc.DecoyBB84` (signal first). ``no_decoy`` uses its
            signal alone (:func:`protocol_for`).
        analyses: label -> analysis object (``key_rate(link, protocol) -> KeyRate``).
        lengths_km: fiber lengths in km, shape (n,).
        mu_grid: signal intensities to search, or None to keep the configured one.
        chunk_size: lengths per compiled call (None: all in one).

    Returns:
        An iterator of :class:`Chunk`; rows have the keys of :data:`KEY_RATE_COLUMNS`. ``key_rate``
        is in secret bits per emitted pulse (Lo-Ma-Chen's bits per signal pulse with
        ``probabilities = (1, 0, 0)``, ``p_z = 1/2``, ``key_basis = "both"``); ``key_rate_bps`` uses
        ``link.source.rep_rate_hz``; ``mu`` and the diagnostics are None where they do not apply
        (no mu dependence, or rate 0 at every mu); PLOB is +inf at 0 km.

    Raises:
        ValidationError: bad input, before anything is compiled.
    """
    lengths = np.asarray(lengths_km, dtype=float)
    bad = Range("length_km", 0.0).error(SimpleNamespace(length_km=lengths), "sweep.")
    if bad:
        raise ValidationError(bad)
    validate(link)
    validate(protocol, "protocol.")
    if not analyses:
        raise ValidationError("analysis.variants: needs at least one analysis")
    labels = tuple(analyses)
    protocols = {label: protocol_for(analyses[label], protocol) for label in labels}
    for label in labels:
        validate(analyses[label], f"analysis.variants.{label}.")
        _check_pair(label, analyses[label], protocols[label])
    mus = None if mu_grid is None else np.asarray(mu_grid, dtype=float)
    if mus is not None:
        bad = Range("mu", 0.0, lo_open=True).error(SimpleNamespace(mu=mus), "optimize.")
        if bad:
            raise ValidationError(bad)
    if chunk_size is not None and int(chunk_size) < 1:
        raise ValidationError(f"sweep.chunk_size = {chunk_size} is out of range: must be >= 1")
    return _key_rate_chunks(link, protocols, dict(analyses), labels, lengths, mus, chunk_size)


@functools.lru_cache(maxsize=32)
def _point_fn(labels: tuple, optimized: tuple) -> Callable[[Any], Any]:
    """The per-point function of the key-rate sweep. Cached: the sweep's jit is keyed on this
    function object, so runs with the same analysis labels (a multirun, a test session) reuse the
    compiled code whenever the tree's structure and static fields match."""

    def point(tree):
        out = {}
        for label, optimize in zip(labels, optimized):
            analysis = tree["analyses"][label]
            sub = {"link": tree["link"], "protocol": tree["protocols"][label]}

            def rate(t, analysis=analysis):
                return analysis.key_rate(t["link"], t["protocol"])

            if optimize:
                best, mu = maximize_on_grid(rate, sub, "protocol.intensities.0", tree["mu_grid"], score=_score)
            else:
                best, mu = rate(sub), jnp.asarray(sub["protocol"].intensities)[0]
            out[label] = (best, mu)
        return out

    return point


def _key_rate_chunks(link, protocols, analyses, labels, lengths, mus, chunk_size) -> Iterator[Chunk]:
    optimized = {
        label: mus is not None and not isinstance(analyses[label], _NO_SIGNAL_INTENSITY) for label in labels
    }
    point = _point_fn(labels, tuple(optimized[label] for label in labels))

    tree = {
        "link": link,
        "protocols": protocols,
        "analyses": analyses,
        "mu_grid": jnp.zeros(1) if mus is None else jnp.asarray(mus),
    }
    sweep_grid = grid({"link.channel.length_km": lengths})
    size = len(lengths) if chunk_size is None else min(int(chunk_size), len(lengths))
    total = -(-len(lengths) // size)
    rep_rate_hz = float(getattr(link.source, "rep_rate_hz", math.nan))
    for index, (_, points, out) in enumerate(run(point, tree, sweep_grid, size)):
        rows = []
        for i, length_km in enumerate(points[:, 0]):
            for label in labels:
                rate_out, mu = out[label]
                rows.append(_row(float(length_km), label, analyses[label], rate_out, mu, i,
                                 optimized[label], rep_rate_hz))
        yield Chunk(rows, index, total)


def _row(length_km, label, analysis, out, mu, i, optimized, rep_rate_hz) -> dict:
    rate = float(out.rate[i])
    row = {
        "length_km": length_km,
        "analysis": label,
        "key_rate": rate,
        "key_rate_bps": rate * rep_rate_hz,
        "mu": None,
        "reason": reason_text(out.reason[i]),
        "y1": None, "e1": None, "gain": None, "qber": None,
    }
    if isinstance(analysis, PLOB):
        return row
    applies = rate > 0 or not optimized
    if applies and not isinstance(analysis, _NO_SIGNAL_INTENSITY):
        row["mu"] = float(mu[i])
    if applies:
        row.update({k: float(getattr(out, k)[i]) for k in ("y1", "e1", "gain", "qber")})
    return row


def _run_key_rate_vs_distance(spec: Mapping[str, Any]) -> Iterator[Chunk]:
    """Registry adapter: read ``spec`` (the built config) and call :func:`key_rate_vs_distance`."""
    engine = spec.get("engine") or {}
    name = engine.get("name", "exact") if isinstance(engine, Mapping) else getattr(engine, "name", "exact")
    if name != "exact":
        raise ValidationError(f"engine = {name}: study key_rate_vs_distance uses the exact engine only")
    sweep = spec.get("sweep") or {}
    if "length_km" not in sweep:
        raise ValidationError("sweep.length_km: missing (give values, or start, stop and num or step)")
    lengths = axis_values(sweep["length_km"], "sweep.length_km")
    optimize = (spec.get("optimize") or {}).get("mu")
    mu_grid = None if optimize is None else axis_values(optimize, "optimize.mu")
    analysis = spec.get("analysis") or {}
    variants = analysis.get("variants") if isinstance(analysis, Mapping) else None
    if not variants:
        raise ValidationError("analysis.variants: needs at least one analysis")
    return key_rate_vs_distance(
        spec["link"], spec["protocol"], dict(variants), lengths, mu_grid, sweep.get("chunk_size", 50)
    )


def _key_rate_figure(rows, ax=None, **kwargs):
    from qmc.plots.keyrate import key_rate_vs_distance as figure

    return figure(rows, ax=ax, **kwargs)


register(Study(
    name="key_rate_vs_distance",
    run=_run_key_rate_vs_distance,
    columns=KEY_RATE_COLUMNS,
    figure=_key_rate_figure,
    figure_name="key_rate_vs_distance",
))
