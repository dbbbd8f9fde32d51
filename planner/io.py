"""The one module that touches the filesystem: model and hardware files, units, atomic writes."""

import json
import os
import re
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from planner.errors import PlannerError
from planner.hardware import hardware_from_mapping, preset
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


def parse_size(text: str, option: str) -> float:
    """Bytes in ``text`` such as ``80GB`` or ``81920MiB``; the unit is required."""
    match = _SIZE.match(str(text))
    unit = match.group(2).upper() if match else ""
    if not match or unit not in SIZE_UNITS:
        raise PlannerError(f"{option}: cannot read {text!r} as a size; use e.g. {SIZE_FORMS}")
    value = float(match.group(1)) * SIZE_UNITS[unit]
    if value <= 0:
        raise PlannerError(f"{option}: {text!r} must be above zero")
    return value


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
    """Parse a YAML or JSON file safely; errors name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlannerError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise PlannerError(f"{path}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot parse"
        raise PlannerError(f"{path}: malformed YAML{where}: {problem}") from None


def bundled_models() -> dict[str, Any]:
    """Example model files shipped with the package, by name (``llama2-13b``)."""
    root = resources.files("planner").joinpath("examples")
    if not root.is_dir():  # running from a source checkout without installing
        root = Path(__file__).resolve().parent.parent / "examples"
    return {Path(p.name).stem: p for p in root.iterdir() if p.name.endswith(MODEL_SUFFIXES)}


def load_model(arg: str) -> ModelSpec:
    """A model from a file path, or the bare name of a bundled example."""
    path = Path(arg)
    if not path.exists():
        models = bundled_models()
        if arg not in models:
            raise PlannerError(
                f"model {arg!r}: no such file, and no bundled model of that name; "
                f"bundled: {', '.join(sorted(models))}"
            )
        with resources.as_file(models[arg]) as found:
            return ModelSpec.from_hf_config(read_mapping(Path(found)), arg, str(arg))
    if path.is_dir():
        path = path / "config.json"
    return ModelSpec.from_hf_config(read_mapping(path), path.stem, str(path))


def load_hardware(arg: str) -> HardwareSpec:
    """A preset name or a hardware YAML file."""
    path = Path(arg)
    if path.suffix in MODEL_SUFFIXES or path.exists():
        if not path.exists():
            raise PlannerError(f"--gpu: no such hardware file {arg!r}")
        return hardware_from_mapping(read_mapping(path), path.stem, str(path))
    return preset(arg)


def write_atomic(path: Path, text: str, executable: bool = False) -> None:
    """Write ``text`` whole or not at all: a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o755 if executable else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parse_token_count(text: str, option: str) -> int:
    """A context length: ``32768``, ``32k`` or ``128K`` (k = 1024 tokens, as context sizes are quoted)."""
    body = str(text).strip().lower()
    try:
        value = int(float(body[:-1]) * 1024) if body.endswith("k") else int(body)
    except ValueError:
        value = -1
    if value <= 0:
        raise PlannerError(f"{option}: cannot read {text!r} as a token count; use e.g. 32768 or 32k")
    return value
