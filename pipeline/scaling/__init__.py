"""Scaling-law sweeps: a ladder of pretraining runs and saturating power-law fits of their loss."""

from pipeline.scaling.config import LadderSize, ScalingConfig

__all__ = ["LadderSize", "ScalingConfig"]
