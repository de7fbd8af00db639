"""The command layer: the ``qmc`` command (:mod:`qmc.cli.command`), the run folders it leaves under
Hydra (:mod:`qmc.cli.folders`), and ``qmc-plot`` and ``qmc-merge`` on finished run folders
(:mod:`qmc.cli.runs`). The only package of qmc that imports Hydra or OmegaConf."""

from qmc.cli.command import (
    COMPONENT_PACKAGES, CONF_DIR, ConfigError, build, check_overrides, check_targets, compose, known_keys, main,
    merge_main, plot_main, prepare, run_title,
)
from qmc.cli.folders import RunFolders, job_folder

__all__ = ["main", "plot_main", "merge_main", "compose", "prepare", "build", "check_targets", "check_overrides", "known_keys",
           "run_title", "job_folder", "RunFolders", "ConfigError", "COMPONENT_PACKAGES", "CONF_DIR"]
