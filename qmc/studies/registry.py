"""The registry of studies: a name (the config's ``study`` key) -> how to run it, its columns, its figure.

A study turns built components (a :class:`qmc.Link`, a protocol, analyses, settings) into rows of
a tidy table, one chunk of its sweep at a time, so that the caller can save each chunk as it
finishes. Studies know nothing about Hydra: the ``qmc`` command builds the components from its
config and looks the study up here; a script calls the study function directly.

Adding a study: a module in :mod:`qmc.studies` with a function ``run(spec) -> Iterator[Chunk]``
(``spec`` is the config with every component built), a figure function in :mod:`qmc.plots`, and
``register(Study(...))`` at import; add the module's name to :data:`STUDY_MODULES`. The command
needs no change.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any, Callable, Iterator, Mapping, Sequence

from qmc.validation import ValidationError

__all__ = ["Chunk", "Study", "STUDIES", "STUDY_MODULES", "register", "get", "names"]


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
        figure: ``figure(rows) -> matplotlib Figure`` (no simulation inside), or its name as
            ``"module:function"``, imported when a figure is drawn (so that running a study without
            figures, or ``import qmc``, never loads matplotlib).
        figure_name: file stem of the saved figure (``<stem>.png`` and ``<stem>.pdf``).
        no_figure: ``no_figure(rows) -> str | None``: why these rows make no figure (e.g. one
            point of a versus-distance figure), or None to draw it.
    """

    name: str
    run: Callable[[Mapping[str, Any]], Iterator[Chunk]]
    columns: tuple
    figure: Callable[..., Any] | str
    figure_name: str
    no_figure: Callable[[Sequence[Mapping[str, Any]]], str | None] | None = None

    def draw(self, rows, published=None, **kwargs):
        """The study's figure of ``rows``, with ``published`` points (:mod:`qmc.gallery`) and a
        ``title`` where the figure can draw them."""
        figure = self.figure
        if isinstance(figure, str):
            module, _, function = figure.partition(":")
            figure = getattr(importlib.import_module(module), function)
        parameters = inspect.signature(figure).parameters
        if published is not None and "published" in parameters:
            kwargs["published"] = published
        if kwargs.get("title") is None or "title" not in parameters:
            kwargs.pop("title", None)
        return figure(rows, **kwargs)


STUDIES: dict[str, Study] = {}

# Modules that register studies when imported (besides this one). A study in its own module adds
# the module here; :func:`get` and :func:`names` import them on first use, so ``import qmc``
# stays light and the command needs no change.
STUDY_MODULES: list[str] = [
    "qmc.studies.key_rate", "qmc.studies.decoy_mc", "qmc.studies.finite_key", "qmc.studies.one_vs_two_decoy",
    "qmc.studies.finite_key_mc", "qmc.studies.optimize_link", "qmc.studies.afterpulsing",
    "qmc.studies.finite_key_coverage", "qmc.studies.wdm",
    "qmc.studies.wdm_plan", "qmc.studies.wdm_bursts",
    "qmc.studies.turbulence",
    "qmc.studies.satellite", "qmc.studies.pass_elevation",
    "qmc.studies.pass_day",
    "qmc.studies.bbm92", "qmc.studies.chsh",
    "qmc.studies.repeaters",
]


def register(study: Study) -> Study:
    """Add ``study`` to :data:`STUDIES` (a later registration of the same name replaces it)."""
    STUDIES[study.name] = study
    return study


def _load_modules() -> None:
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
