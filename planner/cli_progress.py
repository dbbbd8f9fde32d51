"""Progress of long commands on stderr: one line rewritten in place on a terminal, nothing when
stderr is a pipe or a file (logs and scripts get only the answer)."""

import sys
from typing import TextIO

CLEAR_LINE = "\r\x1b[K"  # back to the line's start, erase to its end (ANSI)


class TerminalProgress:
    """A ``planner.capacity.Progress``: each message replaces the previous one; ``done`` clears it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.shown = False

    def __call__(self, message: str) -> None:
        if self.enabled:
            self.stream.write(f"{CLEAR_LINE}{message}")
            self.stream.flush()
            self.shown = True

    def done(self) -> None:
        """Erase the last message, so that what follows starts on a clean line."""
        if self.shown:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
            self.shown = False
