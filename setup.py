"""Ship the repository's Hydra config tree (``conf/``) inside the wheel as ``qmc/conf``.

Everything else is in pyproject.toml. ``conf/`` lives at the repository root, outside the
package, so it is copied into the build as package data here; ``qmc._paths.conf_dir`` finds it
there in an installed wheel and at the root in a checkout or an editable install.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithConf(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads conf/ where it is
            return
        for source in sorted((ROOT / "conf").rglob("*.yaml")):
            target = Path(self.build_lib) / "qmc" / "conf" / source.relative_to(ROOT / "conf")
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildWithConf})
