"""User-derived strings: refused at load time when they hold control characters, and quoted for
their context in every generated file (shell word, shell comment, SLURM directive).

Names come from files other people wrote (a model's file name, a hardware file's ``name``, a
``rope_scaling`` type) and end up in launch scripts that run on clusters with the user's
credentials. A newline in a comment starts a command; ``$(...)`` or a backtick in an unquoted word
runs one. The loaders call ``check_printable``; the emitters call ``shell_word``, ``shell_comment``
and ``slurm_value`` even so, so that a string that reaches them another way is still inert.
"""

import shlex
import unicodedata

from planner.errors import PlannerError

__all__ = ["MAX_NAME_CHARS", "check_printable", "one_line", "shell_comment", "shell_word", "slurm_value"]

MAX_NAME_CHARS = 200
# Unicode categories that are not text on one line: control (Cc: newline, escape, NUL), format
# (Cf: bidi overrides, zero-width joiners, the "Trojan Source" characters), line and paragraph
# separators (Zl, Zp), lone surrogates (Cs), private-use and unassigned code points (Co, Cn): what
# Python's ``str.isprintable`` refuses, except spaces.
UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
SLURM_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-")


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
            f"{field} {one_line(value)!r} holds the control character U+{ord(bad):04X}; "
            "names must be printable text on one line"
        )
    return value


def one_line(text: str) -> str:
    """``text`` with every unprintable character written as an escape (``\\n``, ``\\x1b``)."""
    return "".join(c.encode("unicode_escape").decode("ascii") if _unprintable(c) else c for c in text)


def shell_word(value: str) -> str:
    """One shell word that expands to exactly ``value`` (``shlex.quote``)."""
    return shlex.quote(value)


def shell_comment(text: str) -> str:
    """A ``# ...`` line that stays a comment whatever ``text`` holds: unprintable characters
    (newline, carriage return, NUL) are escaped, so nothing after them becomes a command."""
    return "# " + one_line(text)


def slurm_value(value: str) -> str:
    """A value for an ``#SBATCH --option=VALUE`` directive: sbatch splits directives on spaces and
    reads quotes, so only ``[A-Za-z0-9._+-]`` pass; anything else becomes ``_``."""
    return "".join(c if c in SLURM_SAFE else "_" for c in value) or "plan"
