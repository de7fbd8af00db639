"""The command's run folders under Hydra: a refused run leaves none, and a multirun names each
job's folder by the overrides it sweeps.

Hydra creates the run folder (``.hydra/`` and an empty ``qmc.log``) before the command sees the
config, so a refusal removes it again, and the parent folders that the same command created,
when they hold nothing else. Nothing that existed before the command is removed:
:class:`RunFolders` notes at its start which folders exist and what they hold, so a
``hydra.run.dir`` given by the user keeps what it held (only Hydra's new ``.hydra/`` and
``qmc.log`` go), and so do a multirun's earlier jobs.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

__all__ = ["RunFolders", "job_folder", "remove_refused_run", "parse_overrides"]

log = logging.getLogger("qmc")


def parse_overrides(overrides: Iterable[str]) -> list:
    """Hydra's parsed form of command-line overrides."""
    return OverridesParser.create().parse_overrides(list(overrides))



# An output folder of this command (run folder, or a multirun's folder) -> (the topmost folder
# the command creates for it, or None when it exists already; the names it held before).
_BEFORE: dict[str, tuple[Path | None, frozenset[str]]] = {}
_SWEPT: set[str] | None = None  # the keys the current multirun sweeps (None: not known)


def _note_before(folder: Any) -> None:
    path = Path(os.path.abspath(str(folder)))
    top, missing = None, path
    while not missing.exists() and missing != missing.parent:
        top, missing = missing, missing.parent
    names = frozenset(os.listdir(path)) if top is None and path.is_dir() else frozenset()
    _BEFORE[str(path)] = (top, names)


class RunFolders(Callback):
    """Hydra callback (``hydra.callbacks`` in ``conf/config.yaml``): before Hydra creates the run
    (or multirun) folder, notes which folders exist and what they hold, so that a refused run
    removes only what this command created; for a multirun, notes which keys the command sweeps
    (:func:`job_folder`)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _note_before(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _SWEPT
        _note_before(config.hydra.sweep.dir)
        _SWEPT = {o.key_or_group for o in parse_overrides(config.hydra.overrides.task) if o.is_sweep_override()}
        _SWEPT |= {str(k) for k in OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}}


def job_folder(overrides: Iterable[str], num: Any) -> str:
    """The folder name of multirun job ``num``: its overrides of the keys the command sweeps
    (``system=snspd_zadeh2017``, joined by ``,``; all its overrides when the swept keys are not
    known, as in a job that a cluster launcher starts in another process), or its number when
    there are none. Names too long for a file system get the number in front, so that they stay
    unique; ``/`` becomes ``_``."""
    items = [f"{o.key_or_group}={o.get_value_element_as_str()}" for o in parse_overrides(overrides)
             if not o.is_hydra_override() and (_SWEPT is None or o.key_or_group in _SWEPT)]
    name = ",".join(items).replace("/", "_").replace(os.sep, "_")
    if name in ("", ".", ".."):
        return str(num)
    return name if len(name.encode()) <= 200 else f"{num}_{name.encode()[:180].decode(errors='ignore')}"


OmegaConf.register_new_resolver("qmc.job_folder", job_folder, replace=True)


def _prune(folder: Path, top: Path) -> None:
    """Remove ``folder`` and its parents up to ``top`` (included) while they are empty."""
    while (folder == top or top in folder.parents) and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def remove_refused_run(hydra_cfg: Any) -> None:
    """Remove what Hydra wrote for a refused run (``.hydra/`` and the log), where this command
    created it, then the folders it created that are left empty; a multirun's ``multirun.yaml``
    too when no job of this command left anything. Nothing that was there before is touched, and
    nothing at all when the run folder holds anything else."""
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    base = Path(os.path.abspath(str(hydra_cfg.sweep.dir if multirun else run_dir)))
    if str(base) not in _BEFORE or not run_dir.is_dir():
        return
    top, before = _BEFORE[str(base)]
    if multirun:
        if top is None and run_dir.name in before:
            return  # the job's folder was there before: what it held is unknown
        job_before = frozenset()
    else:
        job_before = before
    hydra_files = {"config.yaml", "hydra.yaml", "overrides.yaml"}
    log_name = f"{hydra_cfg.job.name}.log"
    new = [entry for entry in run_dir.iterdir() if entry.name not in job_before]
    for entry in new:
        if entry.name == hydra_cfg.output_subdir and entry.is_dir():
            if {p.name for p in entry.iterdir()} <= hydra_files:
                continue
        elif entry.name == log_name and entry.is_file():
            continue
        return  # something else is there: leave the folder as it is
    root = logging.getLogger()
    for handler in list(root.handlers):  # Hydra's handler of qmc.log, open in the run folder
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == run_dir:
            root.removeHandler(handler)
            handler.close()
    for entry in new:
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    if multirun:
        _prune(run_dir, run_dir)
        names = {p.name for p in base.iterdir()}
        if "multirun.yaml" not in before and names - before == {"multirun.yaml"}:
            (base / "multirun.yaml").unlink()
    if top is not None:
        _prune(base, top)
