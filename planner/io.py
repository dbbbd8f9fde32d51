"""The one module that touches the filesystem: model and hardware files, units, atomic writes."""

import difflib
import json
import math
import os
import re
import stat
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from planner.errors import PlannerError
from planner.hardware import hardware_from_mapping, preset
from planner.numbers import check_number
from planner.specs import HardwareSpec, ModelSpec

SIZE_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}
SIZE_FORMS = "80GB, 80GiB, 81920MiB, 1.5TB (GB/TB are powers of 1000, GiB/TiB of 1024)"
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]+)\s*$")
MODEL_SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 4 * 2**20  # model, hardware and plan files are a few KiB; HF configs under 100 KiB


def parse_size(text: str, option: str) -> float:
    """Bytes in ``text`` such as ``80GB`` or ``81920MiB``; the unit is required."""
    match = _SIZE.match(str(text))
    unit = match.group(2).upper() if match else ""
    if not match or unit not in SIZE_UNITS:
        raise PlannerError(f"{option}: cannot read {text!r} as a size; use e.g. {SIZE_FORMS}")
    value = float(match.group(1)) * SIZE_UNITS[unit]
    if value <= 0:
        raise PlannerError(f"{option}: {text!r} must be above zero")
    return check_number(value, option)


def parse_reserve(text: str) -> tuple[float, float]:
    """``10%`` (share of device memory) or a size such as ``6GiB``: (fraction, fixed bytes)."""
    text = str(text).strip()
    if text.endswith("%"):
        try:
            share = float(text[:-1]) / 100
        except ValueError:
            share = -1.0
        if not 0 <= share < 1:
            raise PlannerError(
                f"--reserve: {text!r} must be a share from 0% to below 100%, or a size such as 6GiB"
            )
        return share, 0.0
    if text in ("0", "0.0"):
        return 0.0, 0.0
    return 0.0, parse_size(text, "--reserve")


def read_mapping(path: Path) -> Any:
    """Parse a YAML or JSON file safely; errors name the file and the line or key.

    Only a regular UTF-8 file of at most ``MAX_FILE_BYTES`` is read (a FIFO or ``/dev/zero``
    would block or never end); nesting deeper than Python's recursion allows and mapping keys
    that are not strings are refused.
    """
    data = _parse(path, _read_text(path))
    _check_keys(data, path, "")
    return data


def _read_text(path: Path) -> str:
    """The text of a regular file, bounded, opened without blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise PlannerError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            kind = "a directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "not a regular file"
            raise PlannerError(f"{path}: {kind}; give a YAML or JSON file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PlannerError(f"{path}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_FILE_BYTES:
        raise PlannerError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB; not a model or plan file")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise PlannerError(f"{path}: UTF-16 text; save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PlannerError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def _parse(path: Path, text: str) -> Any:
    try:
        if path.suffix == ".json":
            return json.loads(text, parse_constant=_no_constant)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise PlannerError(f"{path}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot parse"
        raise PlannerError(f"{path}: malformed YAML{where}: {problem}") from None
    except RecursionError:
        raise PlannerError(f"{path}: nested too deeply to be a model, hardware or plan file") from None
    except ValueError as exc:  # JSON's NaN/Infinity, integers too long to convert
        raise PlannerError(f"{path}: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows; give a finite number")


def _check_keys(node: Any, path: Path, where: str) -> None:
    """Every mapping key is a string (YAML allows ``1: x`` and ``[a]: x``)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                raise PlannerError(
                    f"{path}: key {_short(key)}{f' under {where!r}' if where else ''} is not a string; "
                    "keys are names such as hidden_size"
                )
            _check_keys(value, path, f"{where}.{key}" if where else key)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _check_keys(item, path, f"{where}[{index}]")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def bundled_models() -> dict[str, Any]:
    """Example model files shipped with the package, by name (``llama2-13b``)."""
    root = resources.files("planner").joinpath("examples")
    if not root.is_dir():  # running from a source checkout without installing
        root = Path(__file__).resolve().parent.parent / "examples"
    return {Path(p.name).stem: p for p in root.iterdir() if p.name.endswith(MODEL_SUFFIXES)}


def load_model(arg: str) -> ModelSpec:
    """A model from a file path, or the bare name of a bundled example."""
    if not arg.strip():
        raise PlannerError("MODEL is empty; give a model file or a bundled name such as llama2-13b")
    path = Path(arg)
    if not path.exists():
        models = bundled_models()
        if arg not in models:
            raise PlannerError(
                f"model {arg!r}: no such file, and no bundled model of that name"
                f"{did_you_mean(arg, models)}; bundled: {', '.join(sorted(models))}"
            )
        with resources.as_file(models[arg]) as found:
            return _model_from_file(Path(found), arg, arg)
    if path.is_dir():
        path = path / "config.json"
    return _model_from_file(path, path.stem, str(path))


def _model_from_file(path: Path, name: str, source: str) -> ModelSpec:
    """Read and convert a model file. Every error names the file: the spec's own cross-checks
    (KV heads dividing heads) too, and a value of the wrong type deep inside a family's keys (a
    list where a mapping belongs)."""
    data = read_mapping(path)
    try:
        return ModelSpec.from_hf_config(data, name, source)
    except PlannerError as exc:
        if str(exc).startswith(source):
            raise
        raise PlannerError(f"{source}: {exc}", exc.exit_code) from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise PlannerError(f"{source}: a key has a value of the wrong type ({exc})") from None


def did_you_mean(name: str, known: Any) -> str:
    """``; did you mean 'llama2-13b'?`` for a near miss among ``known`` names, else ``""``."""
    close = difflib.get_close_matches(name.lower(), [str(k) for k in known], n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def load_hardware(arg: str) -> HardwareSpec:
    """A preset name or a hardware YAML file."""
    if not arg.strip():
        raise PlannerError("--gpu is empty; use a preset such as h100-80gb or a hardware YAML file")
    path = Path(arg)
    if path.suffix in MODEL_SUFFIXES or path.exists():
        if not path.exists():
            raise PlannerError(f"--gpu: no such hardware file {arg!r}")
        if path.is_dir():
            raise PlannerError(f"--gpu {arg!r} is a directory; give a hardware YAML file or a preset")
        return hardware_from_mapping(read_mapping(path), path.stem, str(path))
    return preset(arg)


def write_atomic(
    path: Path, content: str | bytes, executable: bool = False, option: str | None = None
) -> None:
    """Write ``content`` whole or not at all: a uniquely named temporary file in the same folder,
    then rename (concurrent writers of one path never share a temporary file). With ``option``,
    a failure is a one-line error naming it and ``path``, never the temporary file."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.chmod(tmp, file_mode(0o777 if executable else 0o666))
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if option is not None and isinstance(exc, OSError):
            raise PlannerError(f"{option} {path}: cannot write ({exc.strerror or exc})") from None
        raise


def check_output_file(path: Path, option: str) -> Path:
    """Before any work: ``path`` can be written (its folder exists or can be made, and is
    writable; the path is not a folder). Errors name ``option``."""
    if not str(path).strip():
        raise PlannerError(f"{option} is empty; give a file name")
    if path.is_dir():
        raise PlannerError(f"{option} {path}: is a directory; give a file name")
    check_writable_parent(path, option)
    return path


def check_writable_parent(path: Path, option: str) -> None:
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise PlannerError(f"{option} {path}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PlannerError(f"{option} {path}: cannot write in {ancestor} (permission denied)")


def file_mode(bits: int) -> int:
    """``bits`` less the process umask (as ``open`` and ``mkdir`` would create them)."""
    umask = os.umask(0)
    os.umask(umask)
    return bits & ~umask


# Count suffixes and the power of the base each stands for. Which base is a matter of context:
# token budgets are quoted in powers of 1000 (Chinchilla's "1.4T tokens" = 1.4e12), context
# lengths in powers of 1024 (a "32k" context is 32,768 tokens: HF max_position_embeddings).
COUNT_SUFFIXES = {"K": 1, "M": 2, "B": 3, "G": 3, "T": 4}
DECIMAL_BASE = 1000
BINARY_BASE = 1024


def parse_count(text: str, base: int) -> float:
    """A count with an optional suffix (``2T``, ``300B``, ``32k``, ``1.5e12``): K, M, B or G, T are
    ``base`` to the power 1, 2, 3, 4. NaN when it is not a count (the callers name the option)."""
    body = str(text).strip().upper()
    try:
        if body and body[-1] in COUNT_SUFFIXES:
            return float(body[:-1]) * base ** COUNT_SUFFIXES[body[-1]]
        return float(body)
    except ValueError:
        return math.nan


def parse_token_count(text: str, option: str) -> int:
    """A context length: ``32768``, ``32k`` or ``128K`` (k = 1024 tokens, as context sizes are quoted)."""
    value = parse_count(text, BINARY_BASE)
    suffixed = str(text).strip()[-1:].upper() in COUNT_SUFFIXES  # 1.5k = 1536 tokens; 1.5 is no count
    if not (math.isfinite(value) and value >= 1 and (suffixed or value.is_integer())):
        raise PlannerError(f"{option}: cannot read {text!r} as a token count; use e.g. 32768 or 32k")
    return check_number(int(value), option)
