"""Build hook: the wheel carries the top-level ``configs/`` folder as ``search_space/configs``.

``configs/`` stays at the top of the repository, where users see it; a source checkout or an editable install
reads it there, an installed wheel from inside the package (``search_space.loader.config_dir``).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithConfigs(build_py):
    """``build_py`` that also copies ``configs/**/*.yaml`` into the built ``search_space`` package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "search_space" / "configs"
        shutil.copytree(Path(__file__).parent / "configs", target, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithConfigs})
