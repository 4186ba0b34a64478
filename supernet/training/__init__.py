"""Training pieces specific to weight-sharing supernets: distillation loss, gradient projection, conflict meter."""

from supernet.training.alpha_divergence import adaptive_alpha_divergence
from supernet.training.gradient_projection import (
    ConflictStats,
    GradientDots,
    ProjectionMode,
    conflict_stats,
    project_gradients,
    reference_combine,
)

__all__ = [
    "ConflictStats",
    "GradientDots",
    "ProjectionMode",
    "adaptive_alpha_divergence",
    "conflict_stats",
    "project_gradients",
    "reference_combine",
]
