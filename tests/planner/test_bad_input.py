"""Broad attacks on the input boundary (issue 12 classes 4, 5 and 7): odd values anywhere in model
and hardware files, arbitrary bytes as a file, and odd values for every command-line option. Each
must be accepted or refused with one line ``Error: ...`` (exit 2, nothing on stdout): never a
traceback, never a hang."""

import json

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.cli import main
from planner.errors import PlannerError
from planner.io import load_hardware, load_model, read_mapping

from conftest import EXAMPLES
from strategies import bad_number_texts, hostile_strings, odd_documents

MODELS = [
    yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    for name in (
        "llama3-8b",
        "mixtral-8x7b",
        "mpt-7b",
        "deepseek-v3",
        "gpt2-xl",
        "qwen1.5-moe-a2.7b",
        "gemma2-9b",
    )
]
HARDWARE = {
    "name": "gpu",
    "memory_gb": 80,
    "peak_tflops": 989,
    "hbm_bandwidth_gbps": 3350,
    "intra_node_bandwidth_gbps": 450,
    "inter_node_bandwidth_gbps": 50,
    "gpus_per_node": 8,
}
FILES = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FILES
@given(doc=st.one_of(*(odd_documents(m) for m in MODELS)), suffix=st.sampled_from([".yaml", ".json"]))
def test_odd_model_files_load_or_name_the_file(tmp_path, doc, suffix):
    path = tmp_path / f"model{suffix}"
    try:
        path.write_text(yaml.safe_dump(doc) if suffix == ".yaml" else json.dumps(doc))
    except (TypeError, ValueError):
        return  # not representable in that format
    try:
        load_model(str(path))
    except PlannerError as exc:
        assert str(path) in str(exc) or "model name" in str(exc), str(exc)


@FILES
@given(doc=odd_documents(HARDWARE))
def test_odd_hardware_files_load_or_name_the_file(tmp_path, doc):
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        load_hardware(str(path))
    except PlannerError as exc:
        assert str(path) in str(exc) or "hardware name" in str(exc), str(exc)


@FILES
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".yaml", ".json"]))
def test_arbitrary_bytes_parse_or_name_the_file(tmp_path, content, suffix):
    path = tmp_path / f"file{suffix}"
    path.write_bytes(content)
    try:
        read_mapping(path)
    except PlannerError as exc:
        assert str(path) in str(exc)


OPTIONS = [
    *(f"--{o}" for o in ("gpus", "tp", "pp", "dp", "cp", "vpp", "ep", "mbs", "seq-len", "global-batch")),
    *("--mem", "--reserve", "--time-limit", "--moe-capacity-factor", "--gpus-per-node", "--gpu", "--top"),
]


@settings(max_examples=60, deadline=None)
@given(option=st.sampled_from(OPTIONS), value=st.one_of(bad_number_texts, hostile_strings))
def test_odd_option_values_are_one_line_errors(option, value):
    args = ["--gpus", "8", option, value, "llama3.2-1b"] if option != "--gpus" else [option, value, "x"]
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output
    if result.exit_code == 0:  # an odd text that is a fine value after all (e.g. " 8")
        return
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
