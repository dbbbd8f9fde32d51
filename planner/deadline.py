"""The command's time limit: one deadline that the search and the diagnosis both consult."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from planner.errors import PlannerError


@dataclass(frozen=True, slots=True, kw_only=True)
class Deadline:
    """A point in time after which no new work starts; ``limit_s`` None means never."""

    limit_s: float | None = None
    """Seconds allowed from construction (``--time-limit``), or None for no limit."""
    clock: Callable[[], float] = time.monotonic
    """Seconds on a monotonic clock (tests pass a fake one)."""
    start_s: float = field(default=-1.0)
    """Clock reading at construction."""

    def __post_init__(self) -> None:
        if self.limit_s is not None and not (math.isfinite(self.limit_s) and self.limit_s > 0):
            raise PlannerError(f"--time-limit must be a positive number of seconds, got {self.limit_s}")
        if self.start_s < 0:
            object.__setattr__(self, "start_s", self.clock())

    def remaining_s(self) -> float | None:
        """Seconds left (at least 0), or None without a limit."""
        if self.limit_s is None:
            return None
        return max(0.0, self.limit_s - (self.clock() - self.start_s))

    @property
    def expired(self) -> bool:
        """Whether the limit has passed."""
        left = self.remaining_s()
        return left is not None and left <= 0.0


NO_DEADLINE = Deadline()
