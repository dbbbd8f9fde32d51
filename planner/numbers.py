"""One reader of numbers: every number taken from a file or the command line is finite and within a
sane range for its field, checked where it is read, with a one-line error naming the field.

The ranges are generous (several times the largest published models and clusters) and exist so
that a typo or an attack (``.nan``, ``1e400GB``, ``num_hidden_layers: 10**30``, ``--seq-len
10**18``) is refused at once instead of hanging the search, overflowing its integer tables or
reaching a launch file. ``RANGES`` is the documented table (README "Input ranges").
"""

import json
import math
from dataclasses import dataclass
from typing import Any

from planner.errors import PlannerError

__all__ = ["Range", "RANGES", "MODEL_INT", "check_number", "check_finite_document", "describe", "json_text"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Range:
    """The accepted values of one field."""

    low: float
    """Smallest accepted value."""
    high: float
    """Largest accepted value."""
    integer: bool = True
    """Whole numbers only."""
    low_open: bool = False
    """``low`` itself is refused (a share in (0, 1), a positive float)."""
    high_open: bool = False
    """``high`` itself is refused (a probability in [0, 1))."""
    unit: str = ""
    """Unit shown in errors (``bytes``, ``s``)."""
    high_text: str = ""
    """``high`` as people write it (``1 PiB``), when that reads better than the figure."""


PIB = 1024**5
MAX_GPUS = 1 << 20  # 1,048,576 GPUs: ten times the largest clusters announced (~100k)
MAX_TOKENS = 1 << 27  # 134M tokens per sequence: ten times the longest context shipped (10M)
MAX_SEQUENCES = 1 << 24  # 16.7M sequences per step (real recipes: 1k-16k)
MAX_SWEEP_POINTS = 512  # GPU counts in one sweep (each is a full search)

MODEL_INT = Range(low=1, high=1 << 24)
"""Any other integer of a model file."""

RANGES: dict[str, Range] = {
    # command line
    "--gpus": Range(low=1, high=MAX_GPUS),
    "--tp": Range(low=1, high=MAX_GPUS),
    "--pp": Range(low=1, high=MAX_GPUS),
    "--dp": Range(low=1, high=MAX_GPUS),
    "--cp": Range(low=1, high=MAX_GPUS),
    "--vpp": Range(low=1, high=1024),
    "--recompute-layers": Range(low=1, high=4096),  # at most a model's layers (model files: 4,096)
    "--ep": Range(low=1, high=MAX_GPUS),
    "--mbs": Range(low=1, high=MAX_SEQUENCES),
    "--gpus-per-node": Range(low=1, high=4096),
    "--seq-len": Range(low=1, high=MAX_TOKENS),
    "--global-batch": Range(low=1, high=MAX_SEQUENCES),
    "--batch": Range(low=1, high=MAX_SEQUENCES),
    "--context": Range(low=1, high=MAX_TOKENS),
    "--prompt": Range(low=1, high=MAX_TOKENS),
    "--generate": Range(low=0, high=MAX_TOKENS),
    "--mem": Range(low=0, high=PIB, integer=False, low_open=True, high_text="1PiB"),
    "--reserve": Range(low=0, high=PIB, integer=False, high_text="1PiB"),
    "--tokens": Range(low=0, high=1e18, integer=False, low_open=True),
    "--time-limit": Range(low=0, high=1e6, integer=False, low_open=True, unit="s"),
    "--moe-capacity-factor": Range(low=0, high=1000, integer=False, low_open=True),
    "--price-per-gpu-hour": Range(low=0, high=1e6, integer=False),
    # hardware files (GB/s one direction per GPU, TFLOP/s dense)
    "memory_gb": Range(low=1e-3, high=1e6, integer=False),
    "peak_tflops": Range(low=0, high=1e6, integer=False, low_open=True),
    "peak_tflops_fp8": Range(low=0, high=1e6, integer=False, low_open=True),
    "hbm_bandwidth_gbps": Range(low=0, high=1e6, integer=False, low_open=True),
    "intra_node_bandwidth_gbps": Range(low=0, high=1e6, integer=False, low_open=True),
    "inter_node_bandwidth_gbps": Range(low=0, high=1e6, integer=False, low_open=True),
    "pcie_bandwidth_gbps": Range(low=0, high=1e6, integer=False, low_open=True),
    "gpus_per_node": Range(low=1, high=4096),
    "nvlink_domain_gpus": Range(low=1, high=1 << 16),
    # model files (HF config keys; aliases share a range)
    **dict.fromkeys(("num_hidden_layers", "n_layer", "n_layers", "num_layers"), Range(low=1, high=4096)),
    **dict.fromkeys(("hidden_size", "n_embd", "n_embed", "d_model"), Range(low=1, high=1 << 20)),
    **dict.fromkeys(
        ("num_attention_heads", "n_head", "n_heads", "num_key_value_heads", "head_dim"),
        Range(low=1, high=1 << 14),
    ),
    **dict.fromkeys(
        ("max_position_embeddings", "n_positions", "seq_length", "max_seq_len", "sliding_window"),
        Range(low=1, high=MAX_TOKENS),
    ),
    **dict.fromkeys(
        ("n_routed_experts", "num_local_experts", "num_experts", "num_experts_per_tok"),
        Range(low=1, high=1 << 16),
    ),
    **dict.fromkeys(
        (
            "attention_dropout",
            "hidden_dropout",
            "resid_pdrop",
            "attn_pdrop",
            "embd_pdrop",
            "emb_pdrop",
        ),
        Range(low=0, high=1, integer=False, high_open=True),
    ),
    **dict.fromkeys(
        ("rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps"),
        Range(low=0, high=1, integer=False, low_open=True, high_open=True),
    ),
    **dict.fromkeys(("rope_theta", "rotary_emb_base"), Range(low=0, high=1e12, integer=False, low_open=True)),
    "rotary_pct": Range(low=0, high=1, integer=False, low_open=True),
    "routed_scaling_factor": Range(low=0, high=1e3, integer=False, low_open=True),
}


def describe(limits: Range) -> str:
    """``a positive integer up to 4,096``, ``a number in (0, 1)``, ``a positive number up to 1e+06``."""
    unit = f" {limits.unit}" if limits.unit else ""
    high = limits.high_text or _figure(limits.high)
    if limits.integer:
        kind = "a positive integer" if limits.low == 1 else f"an integer from {_figure(limits.low)}"
        return f"{kind} up to {high}{unit}"
    if limits.low == 0 and limits.low_open and not limits.high_open:
        return f"a positive number up to {high}{unit}"
    left = "(" if limits.low_open else "["
    right = ")" if limits.high_open else "]"
    return f"a number in {left}{_figure(limits.low)}, {high}{right}{unit}"


def _figure(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e9:
        return f"{int(value):,}"
    return f"{value:g}"


def check_number(value: Any, field: str, where: str = "", limits: Range | None = None) -> Any:
    """``value`` if it is a finite number within the range of ``field`` (``RANGES``, or
    ``limits``), else a ``PlannerError`` naming ``where`` and the field. Integral floats (``8.0``)
    of an integer field come back as ``int``; booleans are not numbers."""
    limits = limits or RANGES.get(field, MODEL_INT)
    label = f"{where}: key '{field}'" if where else field
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PlannerError(f"{label} must be {describe(limits)}, got {_shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise PlannerError(f"{label} must be {describe(limits)}, got {value}")
    if limits.integer:
        if isinstance(value, float):
            if not value.is_integer():
                raise PlannerError(f"{label} must be {describe(limits)}, got {value!r}")
            value = int(value)
    too_low = value <= limits.low if limits.low_open else value < limits.low
    too_high = value >= limits.high if limits.high_open else value > limits.high
    if too_low or too_high:
        raise PlannerError(f"{label} must be {describe(limits)}, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    """A value for an error message: short, one line."""
    text = repr(value)
    if isinstance(value, int) and not isinstance(value, bool) and len(text) > 20:
        return f"about 10^{len(text) - 1}"
    return text if len(text) <= 60 else text[:57] + "..."


def check_finite_document(node: Any, where: str = "") -> None:
    """Refuse a result holding NaN or infinity (JSON has no such numbers; a launch file or a
    script would read garbage) with an error naming the key."""
    if isinstance(node, float) and not math.isfinite(node):
        raise PlannerError(
            f"the result's {where or 'value'} is {node}: an input number is out of its range; "
            "check the model and hardware files"
        )
    if isinstance(node, dict):
        for key, value in node.items():
            check_finite_document(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            check_finite_document(value, f"{where}[{index}]")


def json_text(document: Any) -> str:
    """A document as strict JSON (never ``NaN`` or ``Infinity``), indented for people and diffs."""
    check_finite_document(document)
    return json.dumps(document, indent=2, allow_nan=False)
