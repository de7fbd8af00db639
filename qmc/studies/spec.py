"""Reading a built config (the ``spec`` a study's ``run`` receives): what every study adapter needs."""

from __future__ import annotations

from typing import Any, Mapping

from qmc.engines.base import ExactEngine
from qmc.studies.settings import OptimizeSettings, Sweep
from qmc.validation import ValidationError

__all__ = ["setting", "sweep_axis", "analyses", "require_exact_engine", "seed"]


def setting(spec: Mapping[str, Any], name: str, cls: type) -> Any:
    """The settings object of group ``name``, built from the config's ``_target_``; the class's
    defaults where the config has no such group."""
    value = spec.get(name)
    if value is None:
        return cls()
    if not isinstance(value, cls):
        raise ValidationError(f"{name}: expected the settings of {cls.__name__} (_target_: "
                              f"{cls.__module__}.{cls.__name__}), got {type(value).__name__}")
    return value


def sweep_axis(spec: Mapping[str, Any], name: str):
    """The values of sweep axis ``name`` (``sweep.<name>``)."""
    return setting(spec, "sweep", Sweep).axis(name)


def optimize_settings(spec: Mapping[str, Any]) -> OptimizeSettings:
    return setting(spec, "optimize", OptimizeSettings)


def seed(spec: Mapping[str, Any]) -> int:
    """The root seed of the run's random keys."""
    return int(spec.get("seed", 0) or 0)


def analyses(spec: Mapping[str, Any]) -> dict:
    """``analysis.variants``: label -> analysis (at least one)."""
    analysis = spec.get("analysis") or {}
    variants = analysis.get("variants") if isinstance(analysis, Mapping) else None
    if not variants:
        raise ValidationError("analysis.variants: needs at least one analysis")
    return dict(variants)


def require_exact_engine(spec: Mapping[str, Any], study: str, why: str) -> None:
    """Refuse any engine but the exact one (``engine=exact``), saying why the study needs it."""
    engine = spec.get("engine")
    if engine is not None and not isinstance(engine, ExactEngine):
        raise ValidationError(f"engine = {getattr(engine, 'name', type(engine).__name__)}: study {study} {why}")
