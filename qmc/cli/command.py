"""The ``qmc`` command: Hydra configs -> qmc components -> a study -> a run folder.

This is the only module of qmc that imports Hydra or OmegaConf. ``main`` composes the config
(the repository's ``conf/``, shipped inside the wheel: :func:`qmc._paths.conf_dir`), builds
every ``_target_`` after checking that it names a qmc component or settings class, validates the
built objects (bad input stops the run with one line and exit status 2, before anything
compiles), runs the study named by ``study`` (:func:`qmc.studies.get`) and writes the run folder
through :func:`qmc.studies.execute`, with a figure titled by :func:`run_title` at ``plot.dpi``.

A ``+key=value`` override may only add a top-level key that some part of qmc reads
(:func:`known_keys`); any other is refused like a bad value (:func:`check_overrides`).

A refused run leaves no folder, and a multirun names each job's folder by the overrides it sweeps
(``system=snspd_zadeh2017``): :mod:`qmc.cli.folders`.

A run computes the chunks of its shard (``sweep.shard_count``, ``sweep.shard_index``: merged by
``qmc-merge``, :mod:`qmc.cli.runs`) and, with ``resume=true``, only those its run folder does not
hold yet from an earlier run of the same config (:func:`qmc.cli.runs.config_digest`).

Examples:
    qmc                                   # the default study (decoy_bb84_gys)
    qmc experiment=decoy_bb84_snspd       # another study
    qmc system=snspd_zadeh2017 analysis.f_ec=1.1
    qmc -m detector=gys2004,snspd         # a multirun: folders detector=gys2004, detector=snspd
    qmc --help                            # the groups, their options and the common keys
    qmc hydra.run.dir=<folder> resume=true   # finish an interrupted run
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import os
import re
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from qmc import _devices
from qmc._paths import conf_dir, gallery_dir
from qmc.cli import folders
from qmc.cli.folders import RunFolders, job_folder, parse_overrides
from qmc.cli.runs import CHUNK_KEYS, chunk_plan, config_digest, merge_main, name_differences, plot_main, shard_of

__all__ = ["main", "plot_main", "merge_main", "compose", "prepare", "build", "check_targets", "check_overrides", "known_keys",
           "run_title", "job_folder", "RunFolders", "ConfigError", "COMPONENT_PACKAGES", "CONF_DIR"]

log = logging.getLogger("qmc")

CONF_DIR = str(conf_dir())  # the Hydra config tree (absolute: the command works from any folder)

# A `_target_` may only name a public class or function defined in one of these packages: a
# shared config file can build qmc components, never run arbitrary code (os.system, eval, ...).
COMPONENT_PACKAGES = (
    "qmc.sources", "qmc.channels", "qmc.detectors", "qmc.link", "qmc.protocols", "qmc.analysis",
    "qmc.engines", "qmc.studies.settings", "qmc.freespace", "qmc.entanglement",
    "qmc.repeaters",
)

# Top-level config keys that are plain values, not components (never instantiated or validated).
_PLAIN = ("seed", "study", "experiment_name", "published", "resume")

def gallery_file(relative: str) -> str:
    """``${qmc.gallery:<folder>/<file>}`` in a config: the absolute path of a file of the reproduction
    gallery (``experiments/`` of the checkout), so that an experiment reads its published data from
    any working directory."""
    root = gallery_dir()
    if root is None:
        raise ConfigError(f"qmc.gallery:{relative}: the reproduction gallery (experiments/) exists only in a "
                          "source checkout of qmc")
    return str(root / relative)


OmegaConf.register_new_resolver("qmc.gallery", gallery_file, replace=True)


class ConfigError(ValueError):
    """A config that cannot be built (unknown study, refused `_target_`, wrong type)."""


def _fail(message: str, prog: str = "qmc") -> NoReturn:
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------------------------------------
# Overrides: `+key` only for keys qmc reads
# ---------------------------------------------------------------------------------------------


def _top(key: str) -> str:
    return re.split(r"[./@]", key, maxsplit=1)[0]


def _is_global_package(path: Path) -> bool:
    """Whether the header comments of a config file say ``@package _global_`` (its keys are top-level)."""
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            return False
        if re.search(r"@package\s+_global_\b", line):
            return True
    return False


@functools.cache
def known_keys() -> frozenset[str]:
    """The top-level config keys that some part of qmc reads: the config groups of ``conf/``, the
    keys of ``conf/config.yaml`` and those of every ``@package _global_`` file (the experiments add
    ``check``, ``finite``, ``mc``, ``streams``; the system presets set ``channel`` and ``analysis``)."""
    conf = Path(CONF_DIR)
    keys = {p.name for p in conf.iterdir() if p.is_dir() and p.name != "hydra"}
    for path in sorted(conf.rglob("*.yaml")):
        if path.relative_to(conf).parts[0] == "hydra":
            continue
        if path == conf / "config.yaml" or _is_global_package(path):
            keys.update(str(k) for k in OmegaConf.load(path) if k not in ("defaults", "hydra"))
    return frozenset(keys)


def check_overrides(overrides: Iterable[str]) -> None:
    """Raise :class:`ConfigError` for a ``+key=value`` (or ``++key=value``) that adds a top-level
    key no part of qmc reads (:func:`known_keys`): without this, a misspelt key would be added and
    ignored. Overrides of ``hydra.*`` are Hydra's own."""
    for override in parse_overrides(overrides):
        top = _top(override.key_or_group)
        if (override.is_add() or override.is_force_add()) and top != "hydra" and top not in known_keys():
            prefix = "++" if override.is_force_add() else "+"
            raise ConfigError(f"{prefix}{override.key_or_group}: unknown key {top}; the top-level keys are "
                              f"{', '.join(sorted(known_keys()))}")


# ---------------------------------------------------------------------------------------------
# Building: `_target_` guard, instantiate, validate
# ---------------------------------------------------------------------------------------------


def _locate(target: str) -> Any:
    """Import the longest module prefix of ``target`` (a qmc module) and walk the attributes."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            missing = err.name or ""
            if module_name == missing or module_name.startswith(missing + "."):
                continue  # not a module: the rest are attributes of a shorter prefix
            raise
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(target)


def _check_target(target: Any, where: str) -> None:
    allowed = ", ".join(COMPONENT_PACKAGES)
    refused = ConfigError(
        f"{where}._target_ = {target} is not allowed: a config can only build qmc components "
        f"(public classes and functions of {allowed})"
    )
    if not isinstance(target, str) or not re.fullmatch(r"qmc(\.[A-Za-z][A-Za-z0-9_]*)+", target):
        raise refused
    try:
        obj = _locate(target)
    except (ImportError, AttributeError):
        raise ConfigError(f"{where}._target_ = {target}: no such qmc component") from None
    module = getattr(obj, "__module__", None) or ""
    in_package = any(module == p or module.startswith(p + ".") for p in COMPONENT_PACKAGES)
    if not (in_package and callable(obj)):
        raise refused


def check_targets(node: Any, path: str = "") -> None:
    """Raise :class:`ConfigError` for any ``_target_`` in ``node`` (a plain container) that is not
    a public class or function of :data:`COMPONENT_PACKAGES`. Nothing is instantiated."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_":
                _check_target(value, path or "<root>")
            else:
                check_targets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_targets(value, f"{path}[{i}]")


def _interpolated_name(cfg: DictConfig, path: str, field: str) -> str | None:
    """``"analysis.f_ec"`` when the config value at ``path.field`` is ``${analysis.f_ec}``."""
    node = OmegaConf.select(cfg, path, throw_on_missing=False)
    if not isinstance(node, DictConfig) or field not in node or not OmegaConf.is_interpolation(node, field):
        return None
    raw = OmegaConf.to_container(node, resolve=False)[field]
    match = re.fullmatch(r"\$\{([A-Za-z0-9_.]+)\}", str(raw))
    return match.group(1) if match else None


def _components(tree: Any, path: str = ""):
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        yield path, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            if path or key not in _PLAIN:
                yield from _components(value, f"{path}.{key}" if path else str(key))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _components(value, f"{path}.{i}")


def _validate(obj: Any, path: str, cfg: DictConfig) -> None:
    import qmc

    for field in getattr(type(obj), "leaf_fields", ()):  # a component's numeric fields
        value = getattr(obj, field)
        if isinstance(value, str):
            name = _interpolated_name(cfg, path, field) or f"{path}.{field}"
            raise qmc.ValidationError(f"{name} = {value!r} is not a number")
    try:
        qmc.validate(obj, f"{path}.")
    except qmc.ValidationError as err:
        message = str(err)
        head = re.match(r"([A-Za-z0-9_.]+)", message)
        if head and head.group(1).startswith(f"{path}."):
            field = head.group(1)[len(path) + 1:]
            alias = _interpolated_name(cfg, path, field)
            if alias:
                message = alias + message[len(head.group(1)):]
        raise qmc.ValidationError(message) from None
    except (TypeError, ValueError) as err:  # e.g. a list where a number belongs
        raise qmc.ValidationError(f"{path}: {err}") from None


def build(cfg: DictConfig) -> dict:
    """Build the components of ``cfg`` and validate them (no compilation happens here).

    Returns:
        The resolved config as plain Python with every ``_target_`` instantiated, plus ``link``
        (a :class:`qmc.Link` of ``source``, ``channel``, ``detector`` and ``classical``, the
        traffic in the fiber, checked by :func:`qmc.link.check_noise`).

    Raises:
        ConfigError: a refused or unknown ``_target_``, or a constructor that rejects its arguments.
        qmc.ValidationError: a value out of its allowed range.
    """
    import qmc
    from qmc.link import check_noise

    try:
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as err:  # a missing value (???), a broken interpolation
        key = getattr(err, "full_key", None)
        raise ConfigError(str(err).splitlines()[0] + (f" (full_key: {key})" if key else "")) from None
    container.pop("hydra", None)
    check_targets(container)
    try:
        spec = hydra.utils.instantiate(container, _convert_="all")
    except InstantiationException as err:
        where = re.search(r"full_key: (\S+)", str(err))
        cause = err.__cause__ if err.__cause__ is not None else err
        raise ConfigError(f"{where.group(1) + ': ' if where else ''}{cause}") from None
    for path, obj in _components(spec):
        _validate(obj, path, cfg)
    if all(k in spec for k in ("source", "channel", "detector")):
        spec["link"] = qmc.Link(spec["source"], spec["channel"], spec["detector"], spec.get("classical"))
        check_noise(spec["link"])  # the traffic against the spectrum, on concrete values
    return spec


def compose(*overrides: str, config_name: str = "config") -> DictConfig:
    """The config ``qmc <overrides>`` would run, composed without running anything.

    Examples:
        >>> cfg = compose("experiment=finite_lim2014", "sweep.length_km.values=[50]")
        >>> study, spec, chunks = prepare(cfg)

    Raises:
        ConfigError: a ``+key`` that adds a top-level key qmc does not read (:func:`check_overrides`).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    check_overrides(overrides)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def prepare(cfg: DictConfig):
    """Everything before the first compilation: look the study up, build, validate.

    Returns:
        ``(study, spec, chunks)``: the registered :class:`qmc.studies.Study`, the built config and
        the study's lazy iterator of chunks (validated, not yet traced).

    Raises:
        ConfigError, qmc.ValidationError: as :func:`build`; an unknown ``study``.
    """
    from qmc import studies

    study = studies.get(cfg.study)
    spec = build(cfg)
    return study, spec, study.run(spec)  # a study validates its own settings before compiling


# ---------------------------------------------------------------------------------------------
# qmc
# ---------------------------------------------------------------------------------------------


def _compilation_cache() -> None:
    """Keep compiled programs between runs (JAX's persistent cache): most of a short study's time
    is compilation. ``$QMC_CACHE_DIR`` (default ``~/.cache/qmc/jax``; empty: off) unless
    ``JAX_COMPILATION_CACHE_DIR`` is set, which JAX reads itself. The cache never changes a number."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    path = os.environ.get("QMC_CACHE_DIR", str(Path.home() / ".cache" / "qmc" / "jax"))
    if not path:
        return
    import jax

    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
    except OSError as err:  # a read-only home: run without the cache
        log.warning("compilation cache off (%s): %s", path, err)


# ---------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------


def _refuse(message: str) -> NoReturn:
    """A refusal inside a Hydra run: no folder left behind, one line on stderr, exit status 2."""
    try:
        folders.remove_refused_run(HydraConfig.get())
    except OSError as err:  # the error below matters more than a folder left behind
        log.debug("refused run folder kept: %s", err)
    _fail(message)


# ---------------------------------------------------------------------------------------------
# Figure titles
# ---------------------------------------------------------------------------------------------


def run_title(experiment_name: str, choices: Any, overrides: Iterable[str]) -> str:
    """What distinguishes a run, drawn above its figure: the experiment, the system preset (from
    Hydra's ``choices``), then the command's overrides as ``key=value`` (``hydra.*``, ``plot.*`` and
    ``experiment`` left out), joined by `` · ``: ``decoy_bb84_gys · system=snspd_zadeh2017 · analysis.f_ec=1.1``."""
    choices = dict(choices or {})
    parts = [str(experiment_name)]
    if choices.get("system"):
        parts.append(f"system={choices['system']}")
    for o in parse_overrides(overrides):
        key = o.key_or_group
        if (o.is_hydra_override() or o.is_delete() or _top(key) in ("plot", "experiment", "experiment_name", "system")
                or key in CHUNK_KEYS):
            continue
        value = choices[key] if key in choices else o.get_value_element_as_str()  # a group: Hydra's choice
        parts.append(f"{key}={value}")
    return " · ".join(parts)


def _resume_setting(cfg: DictConfig) -> bool:
    value = cfg.get("resume", False)
    if not isinstance(value, bool):
        raise ConfigError(f"resume = {value!r}: must be true or false")
    return value


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _run(cfg: DictConfig) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    for noisy in ("jax._src.xla_bridge", "matplotlib"):  # backend probing, font cache notices
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import qmc
    from qmc import studies
    from qmc.studies.settings import PlotSettings
    from qmc.studies.spec import setting

    _compilation_cache()

    hydra_cfg = HydraConfig.get()
    try:
        check_overrides(hydra_cfg.overrides.task)
        study, spec, chunks = prepare(cfg)
        plot = setting(spec, "plot", PlotSettings)
    except (ConfigError, qmc.ValidationError) as err:
        _refuse(str(err))

    run_dir = Path(hydra_cfg.runtime.output_dir)
    from qmc.results import write_text
    from qmc.studies.plan import PLAN_KEY

    try:
        resume, plan, digest = _resume_setting(cfg), chunk_plan(spec), config_digest(cfg)
        previous = studies.resumable(run_dir, study, {"config_digest": digest, **shard_of(plan)}) if resume else {}
    except qmc.ValidationError as err:
        _refuse(name_differences(str(err), run_dir / "config.yaml", cfg))  # the earlier run stays as it is
    except ConfigError as err:
        _refuse(str(err))
    plan = dataclasses.replace(plan, done=frozenset(studies.finished_chunks(run_dir)) if previous else frozenset())
    spec[PLAN_KEY] = plan  # read by the study's chunks, which have not started yet
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    from qmc.gallery import published_points

    published = cfg.get("published")
    title = run_title(cfg.experiment_name, hydra_cfg.runtime.choices, hydra_cfg.overrides.task)
    metadata = {
        "experiment_name": cfg.experiment_name,
        "title": title,
        "published": published,
        "seed": int(cfg.seed),
        "dpi": int(plot.dpi),
        "overrides": list(hydra_cfg.overrides.task),
        "command": " ".join(["qmc", *sys.argv[1:]]),
        "config_digest": digest,
    }
    log.info("%s: study %s, writing %s", cfg.experiment_name, study.name, run_dir)
    try:
        with _devices.limit(getattr(spec.get("engine"), "devices", None)):  # engine.devices: every batch of the run
            meta = studies.execute(study, chunks, run_dir, metadata=metadata, published=published_points(published),
                                   title=title, dpi=int(plot.dpi), plan=plan, resume=resume)
    except qmc.ValidationError as err:  # found while running (e.g. a study's own late check)
        _fail(str(err))
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM / SIGHUP (studies.Interrupted)
        signum = getattr(err, "signum", signal.SIGINT)
        print(f"qmc: interrupted ({signal.Signals(signum).name}); {run_dir / 'results.csv'} keeps every finished "
              "chunk", file=sys.stderr)
        from qmc.results import read_metadata

        log.warning("interrupted (%s); %d rows kept", signal.Signals(signum).name, read_metadata(run_dir).get("rows", 0))
        sys.exit(128 + signum)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
    log.info("%d rows in %.1f s -> %s", meta["rows"], meta["wall_time_s"], run_dir)


def main() -> None:
    """Entry point of the ``qmc`` console script (Hydra parses ``sys.argv``)."""
    _run()
