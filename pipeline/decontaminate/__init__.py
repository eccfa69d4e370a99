"""Benchmark decontamination: no evaluation item in the training data (`run_decontaminate`)."""

from pipeline.decontaminate.config import DecontaminateConfig
from pipeline.decontaminate.run import run_decontaminate

__all__ = ["DecontaminateConfig", "run_decontaminate"]
