"""``plan -o DIR``: a plan's files written as one set.

A reader of ``DIR`` sees one run's complete set or none, and no file the current plan does not
list. The set is written into a fresh hidden sibling (``.DIR.plan-XXXXXXXX``), then swapped with
``DIR`` in one step: ``renameat2(RENAME_EXCHANGE)`` on Linux; where the system or the filesystem
lacks it (macOS, some network filesystems), two renames (``DIR`` aside, the new set in), so a
reader may briefly find no ``DIR``, never a mixed one. Concurrent runs into one ``DIR`` each swap
in a whole set (the last wins); a failure or a kill before the swap leaves the previous set as it
was (a kill leaves its hidden staging folder beside ``DIR``). After the swap the previous set is
deleted, file by file, by name.

Files plan did not write are never deleted: a ``DIR`` holding anything but ``plan.yaml``, the
files the new set has and the files its old ``plan.yaml`` lists is refused before any work
(``plan -o ~`` is an error, not a wiped home folder), and a file that appears during the swap is
kept in the hidden folder, which the caller reports.
"""

import contextlib
import ctypes
import errno
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from planner.errors import PlannerError
from planner.io import check_writable_parent, file_mode, read_mapping, write_atomic

PLAN_FILE = "plan.yaml"
RENAME_EXCHANGE = 2  # linux/include/uapi/linux/fs.h
AT_FDCWD = -100  # linux/include/uapi/linux/fcntl.h: paths relative to the working directory
MAX_SWAP_ATTEMPTS = 1000  # concurrent runs may swap in between; each attempt is a few syscalls


def check_output_dir(directory: Path, names: Iterable[str] = (), option: str = "-o") -> Path:
    """Before any work: ``directory`` can receive a file set with ``names``. Returns its real path
    (a symlink to a folder is followed, and the folder it points to is replaced)."""
    if not str(directory).strip():
        raise PlannerError(f"{option} is empty; give a directory such as run/")
    target = Path(os.path.realpath(directory))
    if target.exists() and not target.is_dir():
        raise PlannerError(f"{option} {directory}: is a file; give a directory")
    if target == target.parent:
        raise PlannerError(f"{option} {directory}: the root cannot be replaced; give a new directory")
    here = Path(os.path.realpath(os.getcwd()))
    if here == target or target in here.parents:  # swapped out, the shell would sit in a deleted folder
        raise PlannerError(
            f"{option} {directory}: holds the current directory; give another directory such as run/"
        )
    check_writable_parent(target, option)
    entries, listed = _listing(target, option)
    foreign = sorted(entries - {PLAN_FILE, *names} - listed)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise PlannerError(
            f"{option} {directory}: holds files plan did not write ({shown}); give a new or empty "
            "directory, or one that plan wrote"
        )
    return target


def _listing(directory: Path, option: str) -> tuple[set[str], set[str]]:
    """The entries of ``directory`` and the files its ``plan.yaml`` lists, both of one set:
    another run may swap a set in meanwhile, so the folder must still be the one listed."""
    for _ in range(MAX_SWAP_ATTEMPTS):
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return set(), set()
        except OSError as exc:
            raise PlannerError(f"{option} {directory}: cannot list ({exc.strerror or exc})") from None
        try:
            entries = set(os.listdir(fd))
            listed = listed_files(directory) if PLAN_FILE in entries else set()
            now = os.stat(directory)
            if (now.st_ino, now.st_dev) == (os.fstat(fd).st_ino, os.fstat(fd).st_dev):
                return entries, listed
        except FileNotFoundError:
            pass  # swapped out while being read: read the new one
        finally:
            os.close(fd)
    raise PlannerError(f"{option} {directory}: other runs keep replacing it")


def listed_files(directory: Path) -> set[str]:
    """The launch files ``directory/plan.yaml`` lists (``launch.<framework>.files``); none when
    it is missing or not a plan document."""
    try:
        doc = read_mapping(directory / PLAN_FILE)
    except PlannerError:
        return set()
    launch = doc.get("launch") if isinstance(doc, dict) else None
    names: set[str] = set()
    for entry in launch.values() if isinstance(launch, dict) else ():
        files = entry.get("files") if isinstance(entry, dict) else None
        if isinstance(files, list):
            names |= {f for f in files if isinstance(f, str) and _is_file_name(f)}
    return names


def write_file_set(
    directory: Path, files: dict[str, str], executable: Iterable[str] = (), option: str = "-o"
) -> list[Path]:
    """Replace ``directory`` by exactly ``files`` (name -> text) as one set; returns the hidden
    folders left behind because they hold a file plan did not write (usually none)."""
    executable = set(executable)
    for name in files:
        if not _is_file_name(name):
            raise PlannerError(f"{option}: {name!r} is not a plain file name")
    target = check_output_dir(directory, files, option)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.plan-"))
    swapped, old = False, None
    try:
        for name, text in files.items():
            write_atomic(stage / name, text, executable=name in executable)
        os.chmod(stage, file_mode(0o777))
        old = _swap_in(stage, target)
        swapped = True
    except OSError as exc:
        raise PlannerError(f"{option} {directory}: cannot write ({exc.strerror or exc})") from None
    finally:
        if not swapped:  # the staged files are this run's alone
            shutil.rmtree(stage, ignore_errors=True)
    return _remove_old_set(old, set(files))


def _is_file_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


def _swap_in(stage: Path, target: Path) -> Path | None:
    """Put ``stage`` at ``target`` atomically; returns the path now holding the previous set."""
    for _ in range(MAX_SWAP_ATTEMPTS):
        try:
            os.rename(stage, target)  # no target, or an empty folder: replaced in one step
            return None
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        try:
            if exchange(stage, target):
                return stage
        except FileNotFoundError:
            continue  # another run (fallback path) has the target aside: try the rename again
        aside = stage.with_name(stage.name + ".old")
        try:  # fallback: previous set aside, then the new set in
            os.rename(target, aside)
        except FileNotFoundError:
            continue
        try:
            os.rename(stage, target)
            return aside
        except OSError:  # another run got in first: put ours back in the queue, and theirs back
            with contextlib.suppress(OSError):
                os.rename(aside, target)
    raise OSError(errno.EBUSY, "other runs keep replacing it")


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)`` (glibc 2.28+); False
    where the system or the filesystem does not support it."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


@functools.cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _remove_old_set(old: Path | None, names: set[str]) -> list[Path]:
    """Delete the previous set (now in this run's private hidden folder): only ``plan.yaml``, the
    new set's ``names`` and the files the old ``plan.yaml`` lists; then the folder, if empty."""
    if old is None or old.is_symlink() or not old.is_dir():
        return []
    allowed = {PLAN_FILE, *names, *listed_files(old)}
    for name in set(os.listdir(old)) & allowed:
        path = old / name
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                path.unlink()
    try:
        old.rmdir()
    except OSError:
        return [old]
    return []
