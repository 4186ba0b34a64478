"""Build hook: the wheel carries the top-level ``configs/`` folder inside the packages that read it: the search
spaces (``configs/space/``) as ``search_space/configs/space``, the recipe configs (``train/``, ``search/``,
``finetune/``) as ``nasvit/configs``.

``configs/`` stays at the top of the repository, where users see it; a source checkout or an editable install
reads it there, an installed wheel from inside the packages (``search_space.loader.config_dir``).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIGS = Path(__file__).parent / "configs"


class BuildPyWithConfigs(build_py):
    """``build_py`` that also copies ``configs/**/*.yaml`` into the built packages that read them."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for folder in sorted(p for p in CONFIGS.iterdir() if p.is_dir()):
            package = "search_space" if folder.name == "space" else "nasvit"
            shutil.copytree(folder, Path(self.build_lib) / package / "configs" / folder.name, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithConfigs})
