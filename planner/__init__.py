"""Parallelism planner for large-model training: library entry points."""

from planner.errors import PlannerError

__all__ = ["PlannerError"]
__version__ = "0.1.0"
