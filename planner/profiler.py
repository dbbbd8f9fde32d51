"""``plan profile``: run the microbenchmarks on this machine and assemble a hardware profile.

The datasheet keys come from the preset matching the device (``NVIDIA H200`` -> ``h200``) and say
so in the provenance; a device no preset matches gets its measured figures instead, each marked as
the assumption it is. The tables come from ``planner/microbench.py``; a table that could not be
measured is left out, and its provenance says why (the model then uses its calibrated defaults).
"""

import dataclasses
import datetime
import os
import re
import shutil
import subprocess
import time
from dataclasses import replace
from typing import Any

from planner.hardware import DEFAULT_PRESET, GB, HARDWARE_KEYS, PRESETS, TERA
from planner.microbench import (
    FULL,
    SECTION_SHARES,
    SMALL,
    Progress,
    Section,
    attention_section,
    check_device,
    copy_section,
    gemm_section,
    import_torch,
    one_line,
)
from planner.microbench_collectives import CPU_RANKS, measure_collectives
from planner.profile import TABLES, Dtype, HardwareProfile, Measurement, Span
from planner.specs import HardwareSpec

BENCHMARKS = {"gemm": gemm_section, "attention": attention_section, "memory_bound": copy_section}


def driver_version() -> str:
    """The NVIDIA driver version from ``nvidia-smi``, or empty where it cannot be read."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ""
    try:
        out = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""


def device_facts(torch: Any, device: str) -> tuple[str, float, int]:
    """(device name, memory bytes, devices visible)."""
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        return props.name, float(props.total_memory), torch.cuda.device_count()
    return "cpu", float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), 1


def matching_preset(device_name: str, memory_bytes: float) -> HardwareSpec | None:
    """The preset of this device: the longest preset family (``gb200`` before ``b200``) that the
    device name contains, then the closest memory size (``a100-40gb`` vs ``a100-80gb``)."""
    name = device_name.lower()
    families = {preset_name.split("-")[0] for preset_name in PRESETS}
    found = sorted((f for f in families if f in name), key=len, reverse=True)
    if not found:
        return None
    candidates = [p for n, p in PRESETS.items() if n.split("-")[0] == found[0]]
    return min(candidates, key=lambda p: abs(p.memory_bytes - memory_bytes))


def collectives_section(
    device: str, num_devices: int, sweep: Any, budget_s: float, progress: Progress
) -> Section:
    """NCCL collectives over every visible GPU (gloo over two processes on the CPU)."""
    section = Section()
    ranks = CPU_RANKS if device == "cpu" else num_devices
    if ranks < 2:
        section.skipped = "one GPU visible; collectives need two or more"
        progress(f"collectives: not run ({section.skipped})")
        return section
    progress(f"collectives: {ranks} processes")
    try:
        counts = (sweep.num_warmup, sweep.num_repeats)
        section.rows, section.failures = measure_collectives(
            device, ranks, sweep.collective_sizes_bytes, counts, budget_s
        )
    except Exception as exc:  # spawning, rendezvous or a rank failing: the other tables stand
        section.failures.append(one_line(exc))
    for row in section.rows:
        progress(
            f"collectives {row.op.value} {row.num_ranks} ranks {row.size_bytes} B: {row.bus_gbps:.4g} GB/s"
        )
    for failure in section.failures:
        progress(f"collectives: failed ({failure})")
    return section


def table_provenance(section: Section, stamp: str) -> str:
    """Where a table's numbers come from, with what failed or was skipped, and notes."""
    missing = "; ".join(filter(None, [*section.failures, section.skipped]))
    if not section.rows:
        return f"assumed: the model's calibrated defaults (not measured: {missing or 'no points'})"
    return "".join(
        [stamp, f"; not measured: {missing}" if missing else "", *(f"; note: {n}" for n in section.notes)]
    )


def preset_base(preset: HardwareSpec, device_name: str) -> tuple[dict[str, Any], HardwareProfile]:
    """The matching preset's fields, and its provenance and fitted constants (the profile's tables
    are measured; the preset's calibration still applies to this GPU generation)."""
    fields = {
        f.name: getattr(preset, f.name) for f in dataclasses.fields(HardwareSpec) if f.name != "profile"
    }
    vendor = f"vendor: preset {preset.name} (planner/hardware.py), matched to {device_name}"
    provenance = dict.fromkeys(HARDWARE_KEYS, vendor)
    constants: dict[str, float] = {}
    if preset.profile is not None:
        provenance |= {k: v for k, v in preset.profile.provenance.items() if k not in TABLES}
        constants = dict(preset.profile.constants)
    return fields, HardwareProfile(provenance=provenance, constants=constants)


def measured_base(
    device_name: str, memory_bytes: float, num_devices: int, sections: dict[str, Section]
) -> tuple[dict[str, Any], HardwareProfile]:
    """For a device no preset matches: the best measured figures, each marked as the assumption it
    is, and the default preset's network figures."""
    fallback = PRESETS[DEFAULT_PRESET]
    why = f"no preset matches {device_name}; put the datasheet figure here"
    gemm = sections["gemm"].rows
    best = {d: max((r.tflops for r in gemm if r.dtype is d), default=0.0) for d in (Dtype.BF16, Dtype.FP8)}
    copy = max((r.gbps for r in sections["memory_bound"].rows), default=0.0)
    nvlink = max((r.bus_gbps for r in sections["collectives"].rows if r.span is Span.NVLINK), default=0.0)
    fields = {
        "name": re.sub(r"[^a-z0-9.]+", "-", device_name.lower()).strip("-") or "profiled",
        "memory_bytes": memory_bytes,
        "peak_flops": best[Dtype.BF16] * TERA or fallback.peak_flops,
        "peak_flops_fp8": best[Dtype.FP8] * TERA,
        "hbm_bandwidth_bytes_per_s": copy * GB or fallback.hbm_bandwidth_bytes_per_s,
        "intra_node_bandwidth_bytes_per_s": nvlink * GB or fallback.intra_node_bandwidth_bytes_per_s,
        "inter_node_bandwidth_bytes_per_s": fallback.inter_node_bandwidth_bytes_per_s,
        "gpus_per_node": num_devices,
    }
    measured_best = f"assumed: the best measured figure, a lower bound of the peak ({why})"
    default = f"assumed: preset {fallback.name}'s figure ({why})"
    provenance = {
        "memory_gb": "measured: memory the device reports",
        "peak_tflops": measured_best if best[Dtype.BF16] else default,
        "peak_tflops_fp8": measured_best if best[Dtype.FP8] else "assumed: no FP8 GEMM measured",
        "hbm_bandwidth_gbps": measured_best if copy else default,
        "intra_node_bandwidth_gbps": measured_best if nvlink else default,
        "inter_node_bandwidth_gbps": default,
        "gpus_per_node": "measured: devices visible to PyTorch",
        "pcie_bandwidth_gbps": "assumed: the hardware default (PCIe Gen4 x16)",
    }
    return fields, HardwareProfile(provenance=provenance)


def run_profile(device: str, small: bool, budget_s: float, progress: Progress) -> HardwareSpec:
    """Benchmark this machine's device and return it as a HardwareSpec carrying the profile."""
    torch = import_torch()
    check_device(torch, device)
    sweep = SMALL if small else FULL
    started = time.monotonic()
    device_name, memory_bytes, num_devices = device_facts(torch, device)
    today = datetime.date.today().isoformat()
    progress(
        f"profiling {device_name} ({num_devices} visible), torch {torch.__version__}, {budget_s:.0f} s budget"
    )
    sections: dict[str, Section] = {}
    for key, bench in BENCHMARKS.items():
        deadline = min(time.monotonic() + SECTION_SHARES[key] * budget_s, started + budget_s)
        sections[key] = bench(torch, device, sweep, deadline, progress)
    remaining = max(1.0, started + budget_s - time.monotonic())
    sections["collectives"] = collectives_section(device, num_devices, sweep, remaining, progress)
    if device == "cpu":
        stamp = (
            f"measured: plan profile --device cpu{' --small' if small else ''} on the CPU {today} "
            f"(torch {torch.__version__}): CPU numbers from a test of the code path, not GPU figures"
        )
    else:
        versions = f"torch {torch.__version__}, CUDA {torch.version.cuda}"
        stamp = f"measured: plan profile on {device_name} {today} ({versions})"
    preset = matching_preset(device_name, memory_bytes) if device == "cuda" else None
    if preset is not None:
        fields, base = preset_base(preset, device_name)
    else:
        fields, base = measured_base(device_name, memory_bytes, num_devices, sections)
    provenance = {**base.provenance, **{key: table_provenance(s, stamp) for key, s in sections.items()}}
    measured = Measurement(
        date=today,
        device=device_name,
        torch=str(torch.__version__),
        cuda=torch.version.cuda or "",
        driver=driver_version() if device == "cuda" else "",
        seconds=round(time.monotonic() - started, 1),
    )
    profile = replace(
        base,
        provenance=provenance,
        measured=measured,
        **{key: tuple(section.rows) for key, section in sections.items()},
    )
    return HardwareSpec(profile=profile, **fields)
