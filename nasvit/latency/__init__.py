"""Latency of subnets on the device they will run on: direct measurement and per-block lookup tables."""

from nasvit.latency.measure import (
    LatencySettings,
    inference_model,
    measure_latency,
    measure_model_latency,
    measure_models_interleaved,
    measure_modules_interleaved,
)

__all__ = [
    "LatencySettings",
    "inference_model",
    "measure_latency",
    "measure_model_latency",
    "measure_models_interleaved",
    "measure_modules_interleaved",
]
