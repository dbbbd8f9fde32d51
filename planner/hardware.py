"""GPU presets and hardware files.

Peak dense tensor-core FLOP/s, HBM capacity and bandwidth from the vendors' datasheets; link
bandwidths are per GPU, one direction: NVLink (A100: 600 GB/s bidirectional, H100/H200: 900,
B200: 1800) and one InfiniBand NIC per GPU (A100 systems: HDR 200 Gb/s; H100/H200/B200: NDR
400 Gb/s). The memory is what the driver reports (``nvidia-smi``), e.g. 81559 MiB for H100 SXM.
"""

from collections.abc import Mapping
from typing import Any

from planner.errors import PlannerError
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
    "nvlink_domain_gpus": ("nvlink_domain_gpus", 1),
    "pcie_bandwidth_gbps": ("pcie_bandwidth_bytes_per_s", GB),
}
INTEGER_FIELDS = ("gpus_per_node", "nvlink_domain_gpus")


def preset(name: str) -> HardwareSpec:
    """A named preset; unknown names list the known ones."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in PRESETS:
        raise PlannerError(
            f"--gpu: unknown preset {name!r}; use one of {', '.join(PRESETS)} or a hardware YAML file"
        )
    return PRESETS[key]


def hardware_from_mapping(data: Mapping[str, Any], name: str) -> HardwareSpec:
    """A hardware file: ``memory_gb``, ``peak_tflops``, ``hbm_bandwidth_gbps``,
    ``intra_node_bandwidth_gbps``, ``inter_node_bandwidth_gbps`` (GB/s, one direction, per GPU),
    optional ``gpus_per_node``, ``nvlink_domain_gpus`` (default: the node), ``peak_tflops_fp8`` and
    ``pcie_bandwidth_gbps``."""
    if not isinstance(data, Mapping):
        raise PlannerError(f"{name}: a hardware file is a mapping of {', '.join(HARDWARE_KEYS)}")
    unknown = sorted(set(data) - set(HARDWARE_KEYS) - {"name"})
    if unknown:
        raise PlannerError(f"{name}: unknown key(s) {', '.join(unknown)}; use {', '.join(HARDWARE_KEYS)}")
    fields: dict[str, Any] = {}
    for key, (field_name, scale) in HARDWARE_KEYS.items():
        if key not in data:
            if field_name in INTEGER_FIELDS + ("peak_flops_fp8", "pcie_bandwidth_bytes_per_s"):
                continue
            raise PlannerError(f"{name}: missing key '{key}'")
        value = data[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise PlannerError(f"{name}: key '{key}' must be a positive number, got {value!r}")
        if field_name in INTEGER_FIELDS and not float(value).is_integer():
            raise PlannerError(f"{name}: key '{key}' must be a whole number of GPUs, got {value!r}")
        fields[field_name] = int(value) if field_name in INTEGER_FIELDS else value * scale
    return HardwareSpec(name=str(data.get("name", name)), **fields)
