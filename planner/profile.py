"""Hardware profiles: what a GPU achieves, table by table, and where each number comes from.

A profile extends a hardware file (``planner/hardware.py``: ``memory_gb``, ``peak_tflops``, ...)
with optional tables of achieved performance, written by ``plan profile`` (microbenchmarks) or
``plan calibrate`` (constants fitted on the user's measured steps), or by hand from vendor figures:

- ``gemm``: dense matrix products ``C[m,n] = A[m,k] B[k,n]``, achieved TFLOP/s per dtype;
- ``attention``: fused attention forward/backward, TFLOP/s counted as FlashAttention's benchmark
  does (forward ``4·batch·heads·seq_len²·head_dim``, halved when causal; backward 2.5× forward);
- ``memory_bound``: achieved HBM copy bandwidth (bytes read plus written per second);
- ``collectives``: NCCL bus bandwidth by operation, span (inside the NVLink domain or across the
  network), ranks and message size, as NCCL's ``PERFORMANCE.md`` defines it;
- ``constants``: ``planner.calibration.StepTimeConstants`` fields fitted by ``plan calibrate``.

``provenance`` says, per hardware key or table, ``vendor: ...``, ``measured: ...``, ``fit: ...`` or
``assumed: ...``; ``measured`` records the device, software versions and date of a measurement.
Every table is optional: a missing one leaves the step-time model on its calibrated defaults.
"""

import datetime
import math
from collections.abc import Collection, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from enum import Enum
from typing import Any, get_type_hints

from planner.calibration import DEFAULT_CONSTANTS, StepTimeConstants
from planner.errors import PlannerError

PROVENANCE_KINDS = ("vendor:", "measured:", "fit:", "assumed:")
SIGNIFICANT_DIGITS = 4  # measured rates and fitted constants: run-to-run noise is larger


class Dtype(Enum):
    """Element type of a benchmarked kernel's inputs."""

    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"


class AttentionPass(Enum):
    """Forward or backward pass of the attention kernel."""

    FORWARD = "fwd"
    BACKWARD = "bwd"


class Collective(Enum):
    """NCCL operation, named as ``nccl-tests`` names its benchmarks."""

    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_TO_ALL = "all_to_all"
    SEND_RECV = "send_recv"


class Span(Enum):
    """Where a collective's ranks sit: one NVLink domain, or across the network."""

    NVLINK = "nvlink"
    NETWORK = "network"


def _key(name: str) -> Any:
    """Field metadata: the key a profile file uses for this field."""
    return field(metadata={"key": name})


@dataclass(frozen=True, slots=True, kw_only=True)
class GemmPoint:
    """One matrix product ``C[m,n] = A[m,k] B[k,n]`` and the rate it reached."""

    dtype: Dtype
    """Input element type (bf16, or fp8 through ``torch._scaled_mm``)."""
    m: int
    """Rows of A and C."""
    n: int
    """Columns of B and C."""
    k: int
    """Reduction dimension."""
    tflops: float
    """Achieved TFLOP/s, ``2·m·n·k`` FLOPs per product."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttentionPoint:
    """One fused-attention call and the rate it reached."""

    direction: AttentionPass = _key("pass")
    """Forward (``fwd``) or backward (``bwd``)."""
    dtype: Dtype
    """Element type of Q, K, V."""
    batch: int
    """Sequences per call."""
    num_heads: int = _key("heads")
    """Query heads."""
    num_kv_heads: int = _key("kv_heads")
    """Key/value heads (GQA); equal to ``heads`` without grouping."""
    seq_len: int
    """Tokens per sequence."""
    head_dim: int
    """Width of one head."""
    causal: bool
    """Causal mask (half the score FLOPs)."""
    tflops: float
    """Achieved TFLOP/s, FlashAttention's FLOP convention (module docstring)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryBoundPoint:
    """One device-to-device copy and the bandwidth it reached."""

    size_bytes: int = _key("bytes")
    """Bytes copied."""
    gbps: float
    """Achieved GB/s (10⁹), bytes read plus bytes written per second."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectivePoint:
    """One NCCL collective and its bus bandwidth."""

    op: Collective
    """Operation."""
    span: Span
    """Inside one NVLink domain or across the network."""
    num_ranks: int = _key("ranks")
    """Ranks taking part."""
    size_bytes: int = _key("bytes")
    """Message size per rank, as ``nccl-tests`` reports ``size``."""
    bus_gbps: float
    """Bus bandwidth in GB/s (NCCL ``PERFORMANCE.md``: all_reduce algbw·2(n-1)/n; all_gather,
    reduce_scatter, all_to_all algbw·(n-1)/n; send_recv algbw)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement:
    """Where and when the tables were measured."""

    date: str
    """ISO date of the run (``2026-12-01``)."""
    device: str
    """Device name as the driver reports it (``NVIDIA H200``), or ``cpu``."""
    torch: str = ""
    """PyTorch version."""
    cuda: str = ""
    """CUDA runtime version PyTorch was built with; empty on CPU."""
    driver: str = ""
    """NVIDIA driver version; empty where unknown."""
    seconds: float = 0.0
    """Wall time of the whole benchmark run; 0 where not recorded."""


TABLES: dict[str, type] = {
    "gemm": GemmPoint,
    "attention": AttentionPoint,
    "memory_bound": MemoryBoundPoint,
    "collectives": CollectivePoint,
}
PROFILE_KEYS = ("provenance", "measured", *TABLES, "constants")
CONSTANT_NAMES = tuple(f.name for f in fields(StepTimeConstants))


@dataclass(frozen=True, slots=True, kw_only=True)
class HardwareProfile:
    """The optional tables of a hardware file, validated; HardwareSpec carries it as ``profile``."""

    provenance: Mapping[str, str] = field(default_factory=dict)
    """Per hardware key, table or ``constants.<name>``: where its numbers come from."""
    measured: Measurement | None = None
    """The microbenchmark run the tables come from, if any."""
    gemm: tuple[GemmPoint, ...] = ()
    """Achieved GEMM rates."""
    attention: tuple[AttentionPoint, ...] = ()
    """Achieved fused-attention rates."""
    memory_bound: tuple[MemoryBoundPoint, ...] = ()
    """Achieved HBM copy bandwidths."""
    collectives: tuple[CollectivePoint, ...] = ()
    """Achieved NCCL bus bandwidths."""
    constants: Mapping[str, float] = field(default_factory=dict)
    """Step-time constants that replace the calibrated defaults (``StepTimeConstants`` fields)."""

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], source: str, hardware_keys: Collection[str] = ()
    ) -> "HardwareProfile":
        """The profile keys of a hardware file; ``source`` names the file in errors and
        ``hardware_keys`` are the other keys ``provenance`` may describe."""
        if not isinstance(data, Mapping):
            raise PlannerError(f"{source}: a hardware profile is a mapping of {', '.join(PROFILE_KEYS)}")
        unknown = sorted(map(str, set(data) - set(PROFILE_KEYS)))
        if unknown:
            raise PlannerError(
                f"{source}: unknown key(s) {', '.join(unknown)}; use {', '.join(PROFILE_KEYS)}"
            )
        tables = {name: _table(data.get(name, []), row, f"{source}: {name}") for name, row in TABLES.items()}
        measured = data.get("measured")
        return cls(
            provenance=_provenance(data.get("provenance", {}), source, hardware_keys),
            measured=None if measured is None else _row(Measurement, measured, f"{source}: measured"),
            constants=_constants(data.get("constants", {}), source),
            **tables,
        )

    def to_mapping(self) -> dict[str, Any]:
        """The profile keys as a file holds them (empty tables left out); ``from_mapping`` reads it
        back to an equal profile."""
        out: dict[str, Any] = {}
        if self.provenance:
            out["provenance"] = dict(self.provenance)
        if self.measured is not None:
            out["measured"] = _row_mapping(self.measured)
        for name in TABLES:
            rows = getattr(self, name)
            if rows:
                out[name] = [_row_mapping(row) for row in rows]
        if self.constants:
            out["constants"] = dict(self.constants)
        return out

    def step_constants(self, base: StepTimeConstants = DEFAULT_CONSTANTS) -> StepTimeConstants:
        """``base`` with this profile's fitted constants in place of its own."""
        return replace(base, **self.constants)


def rounded(value: float) -> float:
    """A measured rate or fitted constant as a profile stores it: four significant digits."""
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def _file_key(f: Any) -> str:
    return f.metadata.get("key", f.name)


def _row_mapping(row: Any) -> dict[str, Any]:
    """A table row as the file holds it: file keys, enum values, optional empties left out."""
    out: dict[str, Any] = {}
    for f in fields(row):
        value = getattr(row, f.name)
        if isinstance(value, Enum):
            value = value.value
        if f.default is not MISSING and value == f.default:
            continue
        out[_file_key(f)] = value
    return out


def _table(rows: Any, row_type: type, where: str) -> tuple[Any, ...]:
    if not isinstance(rows, list):
        raise PlannerError(f"{where} must be a list of mappings, got {type(rows).__name__}")
    return tuple(_row(row_type, row, f"{where}[{index}]") for index, row in enumerate(rows))


def _row(row_type: type, data: Any, where: str) -> Any:
    """One validated row: every key known, required keys present, each value of its field's type."""
    keys = {_file_key(f): f for f in fields(row_type)}
    if not isinstance(data, Mapping):
        raise PlannerError(f"{where} must be a mapping of {', '.join(keys)}")
    unknown = sorted(map(str, set(data) - set(keys)))
    if unknown:
        raise PlannerError(f"{where}: unknown key(s) {', '.join(unknown)}; use {', '.join(keys)}")
    hints = get_type_hints(row_type)
    values = {}
    for key, f in keys.items():
        if key not in data:
            if f.default is not MISSING:
                continue
            raise PlannerError(f"{where}: missing key '{key}'")
        values[f.name] = _value(hints[f.name], data[key], f"{where}.{key}")
    return row_type(**values)


def _value(kind: Any, value: Any, where: str) -> Any:
    """``value`` checked against a field type: Enum, bool, positive int, positive finite float, str."""
    if isinstance(kind, type) and issubclass(kind, Enum):
        allowed = [member.value for member in kind]
        if value not in allowed:
            raise PlannerError(f"{where} must be one of {', '.join(allowed)}, got {value!r}")
        return kind(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise PlannerError(f"{where} must be true or false, got {value!r}")
        return value
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise PlannerError(f"{where} must be a positive integer, got {value!r}")
        return value
    if kind is float:
        return _positive_float(value, where)
    if isinstance(value, datetime.date):  # YAML reads an unquoted 2026-12-01 as a date
        return value.isoformat()
    if not isinstance(value, str):
        raise PlannerError(f"{where} must be a string, got {value!r}")
    return value


def _positive_float(value: Any, where: str, allow_zero: bool = False) -> float:
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        need = "a finite number of zero or more" if allow_zero else "a positive finite number"
        raise PlannerError(f"{where} must be {need}, got {value!r}")
    return float(number)


def _provenance(data: Any, source: str, hardware_keys: Collection[str]) -> dict[str, str]:
    """Provenance strings, each under a key it can describe and opening with its kind."""
    known = [*hardware_keys, "measured", *TABLES, "constants", *(f"constants.{n}" for n in CONSTANT_NAMES)]
    if not isinstance(data, Mapping):
        raise PlannerError(f"{source}: provenance must be a mapping of key or table name to its source")
    out = {}
    for key, text in data.items():
        if key not in known:
            raise PlannerError(
                f"{source}: provenance.{key} describes nothing; use a hardware key, a table "
                f"({', '.join(TABLES)}), constants or constants.<name>"
            )
        if not isinstance(text, str) or not text.startswith(PROVENANCE_KINDS):
            raise PlannerError(
                f"{source}: provenance.{key} must be a string opening with {', '.join(PROVENANCE_KINDS)}"
                f" (e.g. 'vendor: datasheet'), got {text!r}"
            )
        out[key] = text
    return out


def _constants(data: Any, source: str) -> dict[str, float]:
    """Fitted step-time constants: known names, finite values of zero or more (shares may be 0)."""
    if not isinstance(data, Mapping):
        raise PlannerError(f"{source}: constants must be a mapping of {', '.join(CONSTANT_NAMES)}")
    unknown = sorted(map(str, set(data) - set(CONSTANT_NAMES)))
    if unknown:
        raise PlannerError(
            f"{source}: constants: unknown name(s) {', '.join(unknown)}; use {', '.join(CONSTANT_NAMES)}"
        )
    return {
        name: _positive_float(v, f"{source}: constants.{name}", allow_zero=True) for name, v in data.items()
    }
