"""Units, file reading and atomic writes."""

import json
import os
from pathlib import Path

import pytest

from planner.errors import PlannerError
from planner.io import (
    DECIMAL_BASE,
    load_model,
    parse_count,
    parse_reserve,
    parse_size,
    parse_token_count,
    read_mapping,
    write_atomic,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("80GB", 80e9),
        ("80GiB", 80 * 2**30),
        ("81920MiB", 81920 * 2**20),
        ("1.5TB", 1.5e12),
        ("80 gb", 80e9),
        ("512KiB", 512 * 1024),
    ],
)
def test_sizes(text, expected):
    assert parse_size(text, "--mem") == pytest.approx(expected)


@pytest.mark.parametrize("text", ["80", "80XB", "GB", "-3GB", "eighty GB"])
def test_bad_sizes_list_the_accepted_forms(text):
    with pytest.raises(PlannerError, match="80GB, 80GiB, 81920MiB, 1.5TB"):
        parse_size(text, "--mem")


def test_zero_size_is_rejected():
    with pytest.raises(PlannerError, match="must be above zero"):
        parse_size("0GB", "--mem")


def test_reserve_forms():
    assert parse_reserve("10%") == (pytest.approx(0.10), 0.0)
    assert parse_reserve("6GiB") == (0.0, 6 * 2**30)
    with pytest.raises(PlannerError, match="--reserve"):
        parse_reserve("150%")


def test_malformed_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("model_type: llama\nhidden_size: [1, 2\n")
    with pytest.raises(PlannerError, match=r"m.yaml: malformed YAML at line \d"):
        read_mapping(bad)


def test_yaml_is_loaded_safely(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("model_type: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(PlannerError, match="malformed YAML"):
        read_mapping(bad)


def test_bundled_name_and_hf_directory(tmp_path):
    assert load_model("llama2-13b").num_layers == 40
    (tmp_path / "config.json").write_text(
        '{"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257}'
    )
    assert load_model(str(tmp_path)).hidden_size == 768


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out" / "plan.yaml"
    write_atomic(target, "a: 1\n")
    assert target.read_text() == "a: 1\n"

    with pytest.raises(TypeError):
        write_atomic(target, None)  # type: ignore[arg-type]
    assert target.read_text() == "a: 1\n"
    assert [p.name for p in target.parent.iterdir()] == ["plan.yaml"]


def test_hardware_file(tmp_path):
    from planner.io import load_hardware

    path = tmp_path / "mi300x.yaml"
    path.write_text(
        "memory_gb: 192\npeak_tflops: 1307\nhbm_bandwidth_gbps: 5300\n"
        "intra_node_bandwidth_gbps: 448\ninter_node_bandwidth_gbps: 50\ngpus_per_node: 8\n"
    )
    hw = load_hardware(str(path))
    assert (hw.name, hw.memory_bytes, hw.peak_flops, hw.gpus_per_node) == ("mi300x", 192e9, 1307e12, 8)
    path.write_text("memory_gb: 192\npeak_tflops: 1307\n")
    with pytest.raises(PlannerError, match="missing key 'hbm_bandwidth_gbps'"):
        load_hardware(str(path))
    path.write_text("memory_gb: 192\npeak_flops: 1\n")
    with pytest.raises(PlannerError, match="unknown key"):
        load_hardware(str(path))
    with pytest.raises(PlannerError, match="no such hardware file"):
        load_hardware(str(tmp_path / "missing.yaml"))


def test_nvlink_domain_defaults_to_the_node_and_reads_from_a_hardware_file(tmp_path):
    from planner.io import load_hardware

    base = (
        "memory_gb: 186\npeak_tflops: 2500\nhbm_bandwidth_gbps: 8000\n"
        "intra_node_bandwidth_gbps: 900\ninter_node_bandwidth_gbps: 50\ngpus_per_node: 4\n"
    )
    path = tmp_path / "rack.yaml"
    path.write_text(base)
    assert load_hardware(str(path)).nvlink_domain_gpus == 4
    path.write_text(base + "nvlink_domain_gpus: 72\n")
    assert load_hardware(str(path)).nvlink_domain_gpus == 72
    path.write_text(base + "nvlink_domain_gpus: 7.5\n")
    with pytest.raises(PlannerError, match="'nvlink_domain_gpus' must be a positive integer"):
        load_hardware(str(path))


# Odd files (issue 12 class 5): each is one line naming the file (and the key), quickly, whichever
# command reads it.
ODD_FILES = {
    "undecodable.yaml": (b"model_type: llama\nhidden_size: \xff\xfe\xfa\n", "not UTF-8"),
    "utf16.yaml": ("model_type: llama\n".encode("utf-16"), "UTF-16"),
    "deep.json": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "deep.yaml": (b"a: " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
    "list.yaml": (b"model_type: [llama]\nhidden_size: 4096\n", "model_type"),
    "keys.yaml": (b"model_type: llama\n1: 2\n", "key 1"),
    "nested_keys.yaml": (b"model_type: mpt\nattn_config: {1: 1}\n", "attn_config"),
    "nan.json": (b'{"model_type": "llama", "hidden_size": NaN}', "NaN"),
    "big.yaml": (b"a: " + b"x" * (5 * 2**20) + b"\n", "larger than"),
    "scalar.yaml": (b"42\n", "mapping"),
}


@pytest.mark.parametrize("command", ["train", "sweep", "serve", "hardware", "compare"])
@pytest.mark.parametrize("name", sorted(ODD_FILES))
def test_odd_files_are_one_line_errors(tmp_path, command, name):
    from click.testing import CliRunner

    from planner.cli import main

    content, fragment = ODD_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    args = {
        "train": ["--gpus", "8", str(path)],
        "sweep": ["sweep", str(path), "--gpus", "8"],
        "serve": ["serve", str(path)],
        "hardware": ["--gpus", "8", "--gpu", str(path), "llama3.2-1b"],
        "compare": ["compare", str(path), str(path)],
    }[command]
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output and result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert name in result.stderr
    if command in ("train", "sweep", "serve") or name not in ("list.yaml", "nested_keys.yaml", "scalar.yaml"):
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "directory"])
def test_special_files_do_not_hang(tmp_path, special):
    """A FIFO with no writer would block open() forever; /dev/zero never ends. Run in a child
    process with a timeout so that a regression fails instead of hanging the suite."""
    import subprocess
    import sys

    path = {"fifo": tmp_path / "model.yaml", "/dev/zero": Path("/dev/zero"), "directory": tmp_path}[special]
    if special == "fifo":
        os.mkfifo(path)
    code = f"from planner.io import read_mapping; from pathlib import Path; read_mapping(Path({str(path)!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert "PlannerError" in done.stderr and (
        "not a regular file" in done.stderr or "directory" in done.stderr
    )


def test_did_you_mean_for_models_and_presets():
    with pytest.raises(PlannerError, match=r"did you mean 'llama2-13b'"):
        load_model("llama-2-13b")
    from planner.io import load_hardware

    with pytest.raises(PlannerError, match=r"did you mean 'h100-80gb'"):
        load_hardware("h100-80")


REFERENCE_CONFIGS = Path(__file__).resolve().parent.parent / "fixtures" / "reference" / "configs"


@pytest.mark.parametrize(
    ("quoted", "config"), [("128k", "llama-3.1-8b.json"), ("32K", "mistral-7b-v0.1.json")]
)
def test_context_lengths_are_1024_based_as_hf_configs_state_them(quoted, config):
    """Llama 3.1's "128K context" and Mistral's "32k" are 131072 and 32768 tokens in their own HF
    configs (``max_position_embeddings``): context lengths count in powers of 1024."""
    expected = json.loads((REFERENCE_CONFIGS / config).read_text())["max_position_embeddings"]
    assert parse_token_count(quoted, "--context") == expected


def test_token_budgets_are_decimal():
    """Budgets are quoted in powers of 1000: Chinchilla's 70B model saw "1.4 trillion" = 1.4e12
    tokens (Hoffmann et al. 2022, Table 1); Llama 2 "2.0T" tokens (Touvron et al. 2023, Table 1)."""
    assert parse_count("1.4T", DECIMAL_BASE) == pytest.approx(1.4e12)
    assert parse_count("2T", DECIMAL_BASE) == 2e12


@pytest.mark.parametrize("text", ["1.5", "0k", "infk", "nank", "-4k", "lots"])
def test_token_counts_refuse_what_is_no_count(text):
    with pytest.raises(PlannerError, match="--context"):
        parse_token_count(text, "--context")
