"""Hardware profiles: schema, strict validation, round trips, and ``--gpu PROFILE``."""

import copy
import json

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from planner.calibration import DEFAULT_CONSTANTS
from planner.cli import main
from planner.errors import PlannerError
from planner.hardware import hardware_from_mapping, hardware_to_mapping, preset
from planner.io import load_hardware
from planner.profile import AttentionPass, Collective, HardwareProfile

# Every key and table of the format (README "Hardware profiles"); the numbers are made up.
PROFILE = {
    "name": "my-h200",
    "memory_gb": 150.75,
    "peak_tflops": 989.0,
    "peak_tflops_fp8": 1979.0,
    "hbm_bandwidth_gbps": 4800.0,
    "intra_node_bandwidth_gbps": 450.0,
    "inter_node_bandwidth_gbps": 50.0,
    "gpus_per_node": 8,
    "nvlink_domain_gpus": 8,
    "pcie_bandwidth_gbps": 50.0,
    "provenance": {
        "peak_tflops": "vendor: NVIDIA H200 datasheet",
        "gemm": "measured: plan profile on NVIDIA H200 2026-12-01",
        "constants.gemm_max_efficiency": "fit: plan calibrate runs.yaml 2026-12-01",
    },
    "measured": {
        "date": "2026-12-01",
        "device": "NVIDIA H200",
        "torch": "2.13.0",
        "cuda": "12.8",
        "driver": "570.86",
        "seconds": 95.0,
    },
    "gemm": [
        {"dtype": "bf16", "m": 8192, "n": 8192, "k": 8192, "tflops": 700.0},
        {"dtype": "fp8", "m": 8192, "n": 8192, "k": 8192, "tflops": 1300.0},
    ],
    "attention": [
        {
            "pass": "fwd",
            "dtype": "bf16",
            "batch": 1,
            "heads": 32,
            "kv_heads": 8,
            "seq_len": 4096,
            "head_dim": 128,
            "causal": True,
            "tflops": 400.0,
        }
    ],
    "memory_bound": [{"bytes": 268435456, "gbps": 3000.0}],
    "collectives": [{"op": "all_reduce", "span": "nvlink", "ranks": 8, "bytes": 1048576, "bus_gbps": 150.0}],
    "constants": {"gemm_max_efficiency": 0.6, "dp_overlap": 0.0},
}


def with_change(path: str, value):
    """PROFILE with the key at dotted ``path`` (list items by index) set to ``value``, or
    deleted when ``value`` is ``...``."""
    data = copy.deepcopy(PROFILE)
    *parents, last = path.split(".")
    target = data
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return data


def test_every_table_is_read_into_typed_rows():
    spec = hardware_from_mapping(PROFILE, "my.yaml")
    profile = spec.profile
    assert spec.peak_flops == 989e12
    assert profile.attention[0].direction is AttentionPass.FORWARD
    assert profile.attention[0].num_kv_heads == 8
    assert profile.collectives[0].op is Collective.ALL_REDUCE
    assert profile.memory_bound[0].size_bytes == 268435456
    assert profile.measured.device == "NVIDIA H200"


def test_profile_round_trips_through_its_mapping():
    assert hardware_to_mapping(hardware_from_mapping(PROFILE, "my.yaml")) == PROFILE


def test_profile_round_trips_through_a_yaml_file(tmp_path):
    path = tmp_path / "my-h200.yaml"
    path.write_text(yaml.safe_dump(PROFILE, sort_keys=False))
    loaded = load_hardware(str(path))
    path.write_text(yaml.safe_dump(hardware_to_mapping(loaded), sort_keys=False))
    assert load_hardware(str(path)) == loaded


def test_unquoted_yaml_date_is_read_as_iso_text(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(PROFILE).replace("date: '2026-12-01'", "date: 2026-12-01"))
    assert "date: 2026-12-01" in path.read_text()
    assert load_hardware(str(path)).profile.measured.date == "2026-12-01"


def test_plain_hardware_file_has_no_profile():
    plain = {k: v for k, v in PROFILE.items() if not isinstance(v, (dict, list))}
    assert hardware_from_mapping(plain, "plain.yaml").profile is None
    assert hardware_from_mapping(plain, "plain.yaml").step_constants == DEFAULT_CONSTANTS


def test_presets_round_trip():
    for name in ("a100-40gb", "h100-80gb", "h200", "b200"):
        assert hardware_from_mapping(hardware_to_mapping(preset(name)), name) == preset(name)


def test_fitted_constants_replace_the_defaults():
    constants = hardware_from_mapping(PROFILE, "my.yaml").step_constants
    assert constants.gemm_max_efficiency == 0.6
    assert constants.dp_overlap == 0.0
    assert constants.comm_efficiency == DEFAULT_CONSTANTS.comm_efficiency


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("gemmm", [], r"my.yaml: unknown key\(s\) gemmm; use memory_gb"),
        ("gemm.0.tflops", -1.0, r"my.yaml: gemm\[0\].tflops must be a positive finite number, got -1"),
        ("gemm.0.tflops", float("nan"), r"gemm\[0\].tflops must be a positive finite number"),
        ("gemm.0.tflops", float("inf"), r"gemm\[0\].tflops must be a positive finite number"),
        ("gemm.0.tflops", "fast", r"gemm\[0\].tflops must be a positive finite number, got 'fast'"),
        ("gemm.1.m", 0, r"gemm\[1\].m must be a positive integer, got 0"),
        ("gemm.1.m", 8.5, r"gemm\[1\].m must be a positive integer, got 8.5"),
        ("gemm.1.dtype", "int8", r"gemm\[1\].dtype must be one of bf16, fp16, fp8, got 'int8'"),
        ("gemm.0.flops", 1.0, r"gemm\[0\]: unknown key\(s\) flops; use dtype, m, n, k, tflops"),
        ("gemm.0.k", ..., r"gemm\[0\]: missing key 'k'"),
        ("gemm", {"m": 1}, r"my.yaml: gemm must be a list of mappings, got dict"),
        ("gemm", [3], r"gemm\[0\] must be a mapping of dtype, m, n, k, tflops"),
        ("attention.0.pass", "both", r"attention\[0\].pass must be one of fwd, bwd"),
        ("attention.0.causal", "yes", r"attention\[0\].causal must be true or false"),
        ("attention.0.kv_heads", True, r"attention\[0\].kv_heads must be a positive integer"),
        ("memory_bound.0.gbps", 0, r"memory_bound\[0\].gbps must be a positive finite number"),
        ("collectives.0.span", "pcie", r"collectives\[0\].span must be one of nvlink, network"),
        ("collectives.0.op", "broadcast", r"collectives\[0\].op must be one of all_reduce, all_gather"),
        ("measured.seconds", -3, r"my.yaml: measured.seconds must be a positive finite number"),
        ("measured.device", ..., r"my.yaml: measured: missing key 'device'"),
        ("measured.device", 7, r"measured.device must be a string, got 7"),
        ("constants.gemm_speed", 1.0, r"constants: unknown name\(s\) gemm_speed; use gemm_max_efficiency"),
        ("constants.dp_overlap", -0.1, r"constants.dp_overlap must be a finite number of zero or more"),
        ("constants", [0.5], r"my.yaml: constants must be a mapping of gemm_max_efficiency"),
        ("provenance.gemm", "from a blog", r"provenance.gemm must be a string opening with vendor:"),
        ("provenance.colour", "vendor: x", r"provenance.colour describes nothing; use a hardware key"),
        ("provenance", "vendor", r"provenance must be a mapping"),
        ("peak_tflops", float("nan"), r"key 'peak_tflops' must be a positive number"),
    ],
)
def test_bad_profiles_are_one_line_errors_naming_file_and_key(path, value, message):
    with pytest.raises(PlannerError, match=message) as caught:
        hardware_from_mapping(with_change(path, value), "my.yaml")
    assert "\n" not in str(caught.value)


def test_profile_alone_round_trips():
    tables = {k: v for k, v in PROFILE.items() if k in ("measured", "gemm", "constants")}
    assert HardwareProfile.from_mapping(tables, "t.yaml").to_mapping() == tables


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "dtype": st.sampled_from(["bf16", "fp16", "fp8"]),
                "m": st.integers(1, 2**20),
                "n": st.integers(1, 2**20),
                "k": st.integers(1, 2**20),
                "tflops": st.floats(1e-3, 1e4, allow_nan=False),
            }
        ),
        max_size=5,
    ),
    st.dictionaries(st.sampled_from(["comm_efficiency", "dp_overlap"]), st.floats(0, 1)),
)
def test_random_profiles_round_trip_through_yaml(gemm, constants):
    tables = {"gemm": gemm, "constants": constants}
    tables = {k: v for k, v in tables.items() if v}
    text = yaml.safe_dump(HardwareProfile.from_mapping(tables, "r.yaml").to_mapping())
    assert HardwareProfile.from_mapping(yaml.safe_load(text), "r.yaml").to_mapping() == tables


def plan_step_time(gpu_file) -> float:
    result = CliRunner().invoke(
        main, ["--gpus", "64", "--gpu", str(gpu_file), "llama2-13b", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["performance"]["step_time_s"]


def test_gpu_option_plans_with_the_profile_constants(tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(hardware_to_mapping(preset("h100-80gb"))))
    slow = tmp_path / "slow.yaml"
    slow_gemm = {"gemm_max_efficiency": DEFAULT_CONSTANTS.gemm_max_efficiency / 2}
    slow.write_text(yaml.safe_dump({**hardware_to_mapping(preset("h100-80gb")), "constants": slow_gemm}))
    # Half the GEMM efficiency: the compute term, most of the step, takes about twice as long.
    assert plan_step_time(slow) > 1.5 * plan_step_time(plain)


def test_gpu_option_with_a_bad_profile_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(with_change("gemm.0.tflops", -1.0)))
    result = CliRunner().invoke(main, ["--gpus", "8", "--gpu", str(bad), "llama2-7b"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {bad}: gemm[0].tflops must be a positive finite number, got -1.0"
    ]
