"""Register nasvit's models (``nasvit_min``, ``nasvit_max``, ``nasvit_subnet``) with timm when timm is imported,
without importing timm ourselves.

Importing timm takes seconds (it imports every model family), so ``import nasvit`` must not do it: the CLI's
light commands (``--help``, ``space show``, ``flops``) would pay for it on every call. Instead, importing
nasvit registers the model at once when timm is already imported, and otherwise the moment timm's import
finishes, through a one-shot import hook (:data:`sys.meta_path`, a stable part of :mod:`importlib`).
Either way ``import nasvit, timm; timm.create_model("nasvit_subnet", ...)`` works in any order.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

_TIMM = "timm"


def register_when_timm_is_imported() -> None:
    """Register nasvit's models now if timm is imported, otherwise right after timm's import completes."""
    if _TIMM in sys.modules:
        _register()
    elif not any(isinstance(finder, _TimmImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TimmImportHook())


def _register() -> None:
    import supernet.timm_models  # noqa: F401 (its @register_model runs on import)


class _TimmImportHook(importlib.abc.MetaPathFinder):
    """Finds timm through the other finders and wraps its loader so that registration follows its import."""

    def find_spec(self, fullname: str, path=None, target: ModuleType | None = None):
        if fullname != _TIMM:
            return None
        sys.meta_path.remove(self)  # one shot: later imports of timm and of its submodules are untouched
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec is not None else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


class _RegisteringLoader(importlib.abc.Loader):
    """timm's own loader, followed by the registration of nasvit's models."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _register()

    def __getattr__(self, name: str):  # resource readers and the like come from timm's own loader
        return getattr(self._loader, name)
