"""Pure formulas of the planner: parameter counts, memory, FLOPs and step time.

A leaf package: the standard library and numpy only, nothing from ``planner``. Every function
computes one quantity from numbers or Enums, names its unit in its name (``*_bytes``, ``*_flops``,
``*_s``) and cites its source in its docstring. The plain evaluator and the CP-SAT builder both call
these functions, so no formula is written twice.
"""
