"""User-derived strings: refused at load time when they hold control characters.

Names come from files other people wrote (a model's file name, a hardware file's ``name``, a
``rope_scaling`` type) and end up in launch scripts that run on clusters with the user's
credentials, and in terminal output. A newline in a script comment starts a command; an escape
sequence rewrites the terminal. The specs call ``check_printable`` when they are built (one
validation point for every loader); the script emitters (``planner/emit_shell.py``) quote values
with ``shlex.quote`` and refuse, by the same definition, what cannot be quoted in a comment.
"""

import unicodedata

from planner.errors import PlannerError

__all__ = ["MAX_NAME_CHARS", "check_printable", "escaped", "has_unprintable"]

MAX_NAME_CHARS = 200
# Unicode categories that are not text on one line: control (Cc: newline, escape, NUL), format
# (Cf: bidi overrides, zero-width joiners, the "Trojan Source" characters), line and paragraph
# separators (Zl, Zp), lone surrogates (Cs), private-use and unassigned code points (Co, Cn): what
# Python's ``str.isprintable`` refuses, except spaces.
UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _unprintable(char: str) -> bool:
    return unicodedata.category(char) in UNPRINTABLE_CATEGORIES


def check_printable(value: object, field: str) -> str:
    """``value`` if it is a string of printable characters on one line, at most
    ``MAX_NAME_CHARS`` long; else a one-line ``PlannerError`` naming ``field``."""
    if not isinstance(value, str):
        raise PlannerError(f"{field} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise PlannerError(f"{field} is empty; give a name such as llama2-13b")
    if len(value) > MAX_NAME_CHARS:
        raise PlannerError(f"{field} is {len(value)} characters long; use at most {MAX_NAME_CHARS}")
    bad = next((c for c in value if _unprintable(c)), None)
    if bad is not None:
        raise PlannerError(
            f"{field} {escaped(value)!r} holds the control character U+{ord(bad):04X}; "
            "names must be printable text on one line"
        )
    return value


def has_unprintable(text: str) -> bool:
    """Whether ``text`` holds a character that is not printable text on one line."""
    return any(_unprintable(c) for c in text)


def escaped(text: str) -> str:
    """``text`` with every unprintable character written as an escape (``\\n``, ``\\x1b``): for error
    messages, which must stay one line whatever the user typed."""
    return "".join(c.encode("unicode_escape").decode("ascii") if _unprintable(c) else c for c in text)
