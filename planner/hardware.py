"""GPU presets and hardware files.

A preset is a hardware file shipped in ``planner/gpus/`` (one YAML per GPU, read once from the
package's own data): peak dense tensor-core FLOP/s, HBM capacity and bandwidth from the vendors'
datasheets; link bandwidths per GPU, one direction (NVLink inside the NVLink domain, one NIC per
GPU across it); the memory as the driver reports it where known. Each number names its source in
the file's ``provenance``, and ``constants`` holds the step-time constants fitted on that GPU
generation's published runs.
"""

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from planner.errors import PlannerError
from planner.numbers import check_number
from planner.profile import PROFILE_KEYS, HardwareProfile
from planner.specs import HardwareSpec

MIB = 1024**2
GB = 1000**3
TERA = 1e12

ALIASES = {
    "h100": "h100-80gb",
    "h100-sxm": "h100-80gb",
    "a100": "a100-80gb",
    "h200-141gb": "h200",
    "gh200": "h100-96gb",
    "gb200-nvl72": "gb200",
    "gb300-nvl72": "gb300",
}
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
        close = difflib.get_close_matches(key, [*PRESETS, *ALIASES], n=2, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise PlannerError(
            f"--gpu: unknown preset {name!r}{hint}; use one of {', '.join(PRESETS)} or a hardware YAML file"
        )
    return PRESETS[key]


def hardware_from_mapping(data: Mapping[str, Any], name: str, source: str | None = None) -> HardwareSpec:
    """A hardware file: ``memory_gb``, ``peak_tflops``, ``hbm_bandwidth_gbps``,
    ``intra_node_bandwidth_gbps``, ``inter_node_bandwidth_gbps`` (GB/s, one direction, per GPU),
    optional ``gpus_per_node``, ``nvlink_domain_gpus`` (default: the node), ``peak_tflops_fp8`` and
    ``pcie_bandwidth_gbps``, and the optional profile tables of ``planner/profile.py``
    (``provenance``, ``measured``, ``gemm``, ...). ``name`` is the spec's name unless the file has
    one; errors name ``source`` (the file)."""
    source = source or name
    if not isinstance(data, Mapping):
        raise PlannerError(f"{source}: a hardware file is a mapping of {', '.join(HARDWARE_KEYS)}")
    unknown = sorted(map(str, set(data) - set(HARDWARE_KEYS) - set(PROFILE_KEYS) - {"name"}))
    if unknown:
        raise PlannerError(
            f"{source}: unknown key(s) {', '.join(unknown)}; use {', '.join(HARDWARE_KEYS)} "
            f"or the profile keys {', '.join(PROFILE_KEYS)}"
        )
    fields: dict[str, Any] = {}
    for key, (field_name, scale) in HARDWARE_KEYS.items():
        if key not in data:
            if field_name in INTEGER_FIELDS + ("peak_flops_fp8", "pcie_bandwidth_bytes_per_s"):
                continue
            raise PlannerError(f"{source}: missing key '{key}'")
        value = check_number(data[key], key, source)  # integer fields come back as int
        fields[field_name] = value if field_name in INTEGER_FIELDS else value * scale
    tables = {key: data[key] for key in PROFILE_KEYS if key in data}
    profile = HardwareProfile.from_mapping(tables, source, ["name", *HARDWARE_KEYS]) if tables else None
    label = data.get("name", name)
    if not isinstance(label, str):
        raise PlannerError(f"{source}: key 'name' must be a string, got {type(label).__name__}")
    return HardwareSpec(name=label, profile=profile, **fields)


def hardware_to_mapping(hardware: HardwareSpec) -> dict[str, Any]:
    """A hardware file for ``hardware`` (its profile tables included): what
    ``hardware_from_mapping`` reads back to the same spec."""
    out: dict[str, Any] = {"name": hardware.name}
    for key, (field_name, scale) in HARDWARE_KEYS.items():
        value = getattr(hardware, field_name)
        if value:  # peak_tflops_fp8 is 0 on GPUs without FP8 units: left out, as on reading
            out[key] = value if field_name in INTEGER_FIELDS else value / scale
    if hardware.profile is not None:
        out.update(hardware.profile.to_mapping())
    return out


PRESET_DIR = Path(__file__).resolve().parent / "gpus"
PRESET_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it: the presets load at every start of the
planner, in 1 ms instead of 10 (the same mappings; user files keep ``yaml.safe_load``'s messages)."""


def _read_presets() -> dict[str, HardwareSpec]:
    """Every preset file of the package, by name."""
    presets = {}
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        spec = hardware_from_mapping(
            yaml.load(path.read_text(), PRESET_LOADER), path.stem, f"planner/gpus/{path.name}"
        )
        presets[spec.name] = spec
    return presets


PRESETS: dict[str, HardwareSpec] = _read_presets()
