"""Latency of subnets on the device they will run on: direct measurement and per-block lookup tables.

The names below load their modules (and torch) on first use, so that importing ``nasvit.latency.settings``
stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LatencySettings": "nasvit.latency.settings",
    "LatencyStats": "nasvit.latency.measure",
    "busy_machine_warning": "nasvit.latency.measure",
    "inference_model": "nasvit.latency.measure",
    "measure_latency": "nasvit.latency.measure",
    "measure_model_latency": "nasvit.latency.measure",
    "measure_models_interleaved": "nasvit.latency.measure",
    "measure_modules_interleaved": "nasvit.latency.measure",
    "warn_if_noisy": "nasvit.latency.measure",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
