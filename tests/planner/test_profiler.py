"""``plan profile``: the CPU run of every benchmark, failures kept out of the tables, one-line errors."""

import sys
import time
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

from planner.cli import main
from planner.hardware import PRESETS
from planner.io import load_hardware
from planner.microbench import SMALL, attention_section, gemm_section, run_points
from planner.profile import AttentionPass, Collective, Dtype, HardwareProfile
from planner.profiler import collectives_section, matching_preset, preset_base, table_provenance
from planner.specs import HardwareSpec

TABLES = ("gemm", "attention", "memory_bound", "collectives")


@pytest.fixture(scope="module")
def cpu_profile(tmp_path_factory):
    """One ``plan profile --small --device cpu`` run (about ten seconds: it spawns two gloo ranks)."""
    path = tmp_path_factory.mktemp("profile") / "cpu.yaml"
    result = CliRunner().invoke(
        main, ["profile", "--small", "--device", "cpu", "--seconds", "60", "-o", str(path)]
    )
    return result, path


def test_cpu_run_measures_every_table(cpu_profile):
    result, path = cpu_profile
    assert result.exit_code == 0, result.output
    profile = load_hardware(str(path)).profile
    assert {row.dtype for row in profile.gemm} == {Dtype.BF16, Dtype.FP8}
    assert {row.direction for row in profile.attention} == set(AttentionPass)
    assert [row.size_bytes for row in profile.memory_bound] == list(SMALL.copy_sizes_bytes)
    assert {row.op for row in profile.collectives} == set(Collective)
    assert profile.measured.device == "cpu"
    assert profile.measured.torch == torch.__version__


def test_cpu_numbers_say_so_in_the_provenance(cpu_profile):
    result, path = cpu_profile
    provenance = load_hardware(str(path)).profile.provenance
    for table in TABLES:
        assert provenance[table].startswith("measured: plan profile --device cpu --small")
        assert "CPU numbers" in provenance[table]
    assert provenance["peak_tflops"].startswith("assumed:")


def test_progress_goes_to_stderr_and_the_profile_to_the_file(cpu_profile):
    result, path = cpu_profile
    assert "gemm bf16 64x64x64:" in result.stderr
    assert "collectives all_reduce 2 ranks" in result.stderr
    assert result.stdout == ""
    assert path.read_text().startswith("name: cpu\n")


def test_the_planner_reads_the_written_profile(cpu_profile):
    _, path = cpu_profile
    result = CliRunner().invoke(main, ["--gpus", "8", "--gpu", str(path), "llama3.2-1b", "--format", "json"])
    assert result.exit_code in (0, 1), result.output  # a CPU "GPU" may well not fit the model
    assert "Error" not in result.output


def test_a_failing_kernel_is_left_out_and_recorded(monkeypatch):
    def no_fp8(*args, **kwargs):
        raise RuntimeError("fp8 unsupported here\nsecond line")

    monkeypatch.setattr(torch, "_scaled_mm", no_fp8)
    section = gemm_section(torch, "cpu", SMALL, time.monotonic() + 60, lambda line: None)
    assert {row.dtype for row in section.rows} == {Dtype.BF16}
    assert section.failures == [
        "fp8 64x64x64: RuntimeError: fp8 unsupported here",
        "fp8 128x64x128: RuntimeError: fp8 unsupported here",
    ]
    text = table_provenance(section, "measured: test")
    assert text == f"measured: test; not measured: {'; '.join(section.failures)}"


def test_attention_without_gqa_support_repeats_kv_heads_and_says_so(monkeypatch):
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def no_gqa(*args, **kwargs):
        if "enable_gqa" in kwargs:
            raise TypeError("scaled_dot_product_attention() got an unexpected keyword argument 'enable_gqa'")
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", no_gqa)
    section = attention_section(torch, "cpu", SMALL, time.monotonic() + 60, lambda line: None)
    assert [row.num_kv_heads for row in section.rows] == [1, 1, 2, 2]  # every shape measured
    assert section.failures == []
    assert table_provenance(section, "measured: test").startswith(
        "measured: test; note: GQA shapes ran with K/V heads repeated, the same FLOPs (TypeError: "
    )


def test_points_past_the_budget_are_skipped_and_said_so():
    section = run_points("gemm", [1, 2, 3], lambda point: 1 / 0, time.monotonic() - 1, lambda line: None)
    assert section.rows == [] and section.skipped == "time budget: 3 of 3 points not run"
    assert table_provenance(section, "measured: test") == (
        "assumed: the model's calibrated defaults (not measured: time budget: 3 of 3 points not run)"
    )


def test_one_gpu_has_no_collectives_table_and_says_why():
    section = collectives_section("cuda", 1, SMALL, 10.0, lambda line: None)
    assert section.rows == []
    assert "one GPU visible" in table_provenance(section, "measured: test")


@pytest.mark.parametrize(
    "device_name, memory_gib, preset",
    [
        ("NVIDIA H100 80GB HBM3", 79.6, "h100-80gb"),
        ("NVIDIA A100-SXM4-40GB", 39.4, "a100-40gb"),
        ("NVIDIA A100-SXM4-80GB", 79.2, "a100-80gb"),
        ("NVIDIA H200", 139.8, "h200"),
        ("NVIDIA B200", 178.4, "b200"),
        ("Tesla V100-SXM2-32GB", 31.7, None),
    ],
)
def test_device_names_match_their_preset(device_name, memory_gib, preset):
    found = matching_preset(device_name, memory_gib * 2**30)
    assert (found.name if found else None) == preset


def test_a_matched_preset_keeps_its_provenance_and_fitted_constants():
    fitted = HardwareProfile(
        provenance={"peak_tflops": "vendor: datasheet", "constants": "fit: benchmarks/calibrate.py"},
        constants={"gemm_max_efficiency": 0.8},
    )
    preset = replace(PRESETS["h200"], profile=fitted)
    fields, base = preset_base(preset, "NVIDIA H200")
    assert HardwareSpec(**fields) == replace(preset, profile=None)
    assert base.constants == {"gemm_max_efficiency": 0.8}
    assert base.provenance["peak_tflops"] == "vendor: datasheet"
    assert base.provenance["constants"] == "fit: benchmarks/calibrate.py"
    assert base.provenance["memory_gb"].startswith("vendor: preset h200 (planner/hardware.py), matched to")


def invoke_profile(*args):
    return CliRunner().invoke(main, ["profile", *args])


def test_no_cuda_gpu_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = invoke_profile("-o", str(tmp_path / "p.yaml"))
    assert result.exit_code == 2
    assert result.output.startswith("Error: --device cuda: PyTorch") and result.output.count("\n") == 1
    assert not (tmp_path / "p.yaml").exists()


def test_no_torch_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    result = invoke_profile("--device", "cpu", "--small")
    assert result.exit_code == 2
    assert result.output.startswith("Error: plan profile needs PyTorch") and result.output.count("\n") == 1


@pytest.mark.parametrize("seconds", ["0", "-5", "nan", "inf"])
def test_bad_time_budget_is_a_one_line_error(seconds):
    result = invoke_profile("--seconds", seconds, "--device", "cpu", "--small")
    assert result.exit_code == 2
    assert result.output.startswith("Error: --seconds must be a positive number")
