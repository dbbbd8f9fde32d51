"""GPU presets and hardware files.

Peak dense tensor-core FLOP/s, HBM capacity and bandwidth from the vendors' datasheets; link
bandwidths are per GPU, one direction: NVLink (A100: 600 GB/s bidirectional, H100/H200: 900,
B200: 1800) and one InfiniBand NIC per GPU (A100 systems: HDR 200 Gb/s; H100/H200/B200: NDR
400 Gb/s). The memory is what the driver reports (``nvidia-smi``), e.g. 81559 MiB for H100 SXM.
"""

import difflib
from collections.abc import Mapping
from typing import Any

from planner.errors import PlannerError
from planner.numbers import check_number
from planner.specs import HardwareSpec

MIB = 1024**2
GB = 1000**3
TERA = 1e12

PRESETS: dict[str, HardwareSpec] = {
    spec.name: spec
    for spec in (
        HardwareSpec(
            name="a100-40gb",
            memory_bytes=40960 * MIB,
            peak_flops=312 * TERA,
            hbm_bandwidth_bytes_per_s=1555 * GB,
            intra_node_bandwidth_bytes_per_s=300 * GB,
            inter_node_bandwidth_bytes_per_s=25 * GB,
        ),
        HardwareSpec(
            name="a100-80gb",
            memory_bytes=81920 * MIB,
            peak_flops=312 * TERA,
            hbm_bandwidth_bytes_per_s=2039 * GB,
            intra_node_bandwidth_bytes_per_s=300 * GB,
            inter_node_bandwidth_bytes_per_s=25 * GB,
        ),
        HardwareSpec(
            name="h100-80gb",
            memory_bytes=81559 * MIB,
            peak_flops=989 * TERA,
            peak_flops_fp8=1979 * TERA,
            pcie_bandwidth_bytes_per_s=50 * GB,
            hbm_bandwidth_bytes_per_s=3350 * GB,
            intra_node_bandwidth_bytes_per_s=450 * GB,
            inter_node_bandwidth_bytes_per_s=50 * GB,
        ),
        HardwareSpec(
            name="h200",
            memory_bytes=143771 * MIB,
            peak_flops=989 * TERA,
            peak_flops_fp8=1979 * TERA,
            pcie_bandwidth_bytes_per_s=50 * GB,
            hbm_bandwidth_bytes_per_s=4800 * GB,
            intra_node_bandwidth_bytes_per_s=450 * GB,
            inter_node_bandwidth_bytes_per_s=50 * GB,
        ),
        HardwareSpec(
            name="b200",
            memory_bytes=180 * GB,
            peak_flops=2250 * TERA,
            peak_flops_fp8=4500 * TERA,
            pcie_bandwidth_bytes_per_s=50 * GB,
            hbm_bandwidth_bytes_per_s=8000 * GB,
            intra_node_bandwidth_bytes_per_s=900 * GB,
            inter_node_bandwidth_bytes_per_s=50 * GB,
        ),
    )
}
ALIASES = {"h100": "h100-80gb", "h100-sxm": "h100-80gb", "a100": "a100-80gb", "h200-141gb": "h200"}
DEFAULT_PRESET = "h100-80gb"

HARDWARE_KEYS = {
    "memory_gb": ("memory_bytes", GB),
    "peak_tflops": ("peak_flops", TERA),
    "peak_tflops_fp8": ("peak_flops_fp8", TERA),
    "hbm_bandwidth_gbps": ("hbm_bandwidth_bytes_per_s", GB),
    "intra_node_bandwidth_gbps": ("intra_node_bandwidth_bytes_per_s", GB),
    "inter_node_bandwidth_gbps": ("inter_node_bandwidth_bytes_per_s", GB),
    "gpus_per_node": ("gpus_per_node", 1),
    "pcie_bandwidth_gbps": ("pcie_bandwidth_bytes_per_s", GB),
}


def preset(name: str) -> HardwareSpec:
    """A named preset; unknown names list the known ones."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in PRESETS:
        close = difflib.get_close_matches(key, [*PRESETS, *ALIASES], n=2, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise PlannerError(
            f"--gpu: unknown preset {name!r}{hint}; use one of {', '.join(PRESETS)} or a hardware YAML file"
        )
    return PRESETS[key]


def hardware_from_mapping(data: Mapping[str, Any], name: str, source: str | None = None) -> HardwareSpec:
    """A hardware file: ``memory_gb``, ``peak_tflops``, ``hbm_bandwidth_gbps``,
    ``intra_node_bandwidth_gbps``, ``inter_node_bandwidth_gbps`` (GB/s, one direction, per GPU),
    optional ``gpus_per_node`` and ``peak_tflops_fp8``; ``source`` (the file) is named in errors."""
    where = source or name
    if not isinstance(data, Mapping):
        raise PlannerError(f"{where}: a hardware file is a mapping of {', '.join(HARDWARE_KEYS)}")
    unknown = sorted(set(data) - set(HARDWARE_KEYS) - {"name"})
    if unknown:
        raise PlannerError(f"{where}: unknown key(s) {', '.join(unknown)}; use {', '.join(HARDWARE_KEYS)}")
    fields: dict[str, Any] = {}
    for key, (field_name, scale) in HARDWARE_KEYS.items():
        if key not in data:
            if field_name in ("gpus_per_node", "peak_flops_fp8", "pcie_bandwidth_bytes_per_s"):
                continue
            raise PlannerError(f"{where}: missing key '{key}'")
        value = check_number(data[key], key, where)
        fields[field_name] = value if field_name == "gpus_per_node" else value * scale
    label = data.get("name", name)
    if not isinstance(label, str):
        raise PlannerError(f"{where}: key 'name' must be a string, got {type(label).__name__}")
    return HardwareSpec(name=label, **fields)
