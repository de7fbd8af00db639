"""Where qmc finds the files that live beside the package: the Hydra config tree and the gallery.

The repository keeps the config tree at its root (``conf/``) and the reproduction gallery in
``experiments/``. A wheel ships ``conf/`` inside the package (``qmc/conf``, copied by
``setup.py``), so a non-editable install finds it without the repository; a source checkout or an
editable install finds the root folder. The gallery is not shipped: outside a checkout,
:func:`gallery_dir` returns None and figures are drawn without published points.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["conf_dir", "gallery_dir"]

_PACKAGE = Path(__file__).resolve().parent


def conf_dir() -> Path:
    """The Hydra config folder: ``qmc/conf`` in an installed wheel, else ``<checkout>/conf``."""
    shipped = _PACKAGE / "conf"
    if (shipped / "config.yaml").is_file():
        return shipped
    return _PACKAGE.parent / "conf"


def gallery_dir() -> Path | None:
    """The reproduction gallery ``<checkout>/experiments``, or None outside a checkout."""
    path = _PACKAGE.parent / "experiments"
    return path if path.is_dir() else None
