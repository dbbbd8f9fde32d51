"""Generated scripts are programs: no user-derived string can run a command in them (issue 12
class 1). Hypothesis builds names from shell metacharacters, newlines and unicode; every script
must pass ``bash -n`` and run with fake ``torchrun``/``srun`` on PATH without the injected command
creating its marker file."""

import json
import subprocess
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

from planner.cli import main
from planner.emit import Emitted, Target
from planner.emit_deepspeed import deepspeed_config
from planner.emit_megatron import megatron_args
from planner.emit_scripts import deepspeed_script, megatron_script, slurm_script
from planner.emit_shell import job_name
from planner.emit_torchtitan import torchtitan_args, torchtitan_script
from planner.errors import PlannerError
from planner.quoting import check_printable, escaped, has_unprintable
from planner.specs import ParallelConfig, TrainingSpec

from conftest import example
from strategies import MARKER, hostile_strings

FAKES = {  # commands the scripts call, replaced by recorders
    "torchrun": 'printf "%s\\0" "$@" > "$FAKE_LOG"',
    "srun": 'printf "%s\\0" "$@" > "$FAKE_LOG"',
    "scontrol": "echo node1",
}
NO_FILESYSTEM_EXAMPLES = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def sandbox(tmp_path):
    """A PATH holding only fake cluster commands, and the marker an injection would create."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return tmp_path


def run_script(sandbox: Path, text: str) -> tuple[subprocess.CompletedProcess, Path]:
    """``bash -n`` then a real run of ``text`` with the fakes first on PATH."""
    marker = sandbox / "injected"
    marker.unlink(missing_ok=True)
    script = sandbox / "script.sh"
    script.write_text(text.replace(MARKER, str(marker)))
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    env = {
        "PATH": f"{sandbox / 'bin'}:/usr/bin:/bin",
        "FAKE_LOG": str(sandbox / "fake.log"),
        "HOME": str(sandbox),
        "SLURM_JOB_NODELIST": "node1",
        "SLURM_SUBMIT_DIR": str(sandbox),
    }
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, cwd=sandbox)
    return done, marker


def base_plan() -> tuple[Target, Emitted, Emitted, Emitted]:
    model = example("llama3-8b")
    config = ParallelConfig(tp=1, pp=1, dp=8)
    training = TrainingSpec(seq_len=4096, global_batch_size=64)
    target = Target(
        model_name=model.name,
        gpu_name="h100-80gb",
        gpus=8,
        gpus_per_node=8,
        config=config,
        grad_accum_steps=8,
    )
    emitted = (f(model, training, config) for f in (megatron_args, deepspeed_config, torchtitan_args))
    return target, *emitted


def scripts(target: Target, megatron: Emitted, deepspeed: Emitted, torchtitan: Emitted) -> dict[str, str]:
    model, training = example("llama3-8b"), TrainingSpec(seq_len=4096, global_batch_size=64)
    return {
        "torchtitan.sh": torchtitan_script(target, torchtitan, model, training),
        "torchtitan.sbatch": slurm_script(target, "torchtitan.sh", torchtitan.notes),
        "slurm.sbatch": slurm_script(target, "megatron.sh", megatron.notes),
        "deepspeed.sh": deepspeed_script(target, deepspeed, 1000),
        "megatron.sh": megatron_script(target, megatron, {}),  # last: its torchrun argv is checked
    }


@NO_FILESYSTEM_EXAMPLES
@given(name=hostile_strings, gpu=hostile_strings, note=hostile_strings, value=hostile_strings)
def test_emitted_scripts_keep_any_string_inert(sandbox, name, gpu, note, value):
    """Even strings the loaders refuse (newlines, NUL) cannot act if they reach an emitter: the
    emitter refuses them in one line, or the script passes ``bash -n``, runs without the injected
    command and hands the value to torchrun as one argument, unchanged."""
    target, megatron, deepspeed, torchtitan = base_plan()
    target = replace(target, model_name=name, gpu_name=gpu)
    megatron = replace(megatron, notes=[note, *megatron.notes], content=[*megatron.content, "--x", value])
    deepspeed = replace(deepspeed, notes=[note, *deepspeed.notes])
    *layout, subcommand = torchtitan.content
    torchtitan = replace(
        torchtitan, notes=[note, *torchtitan.notes], content=[*layout, "--x", value, subcommand]
    )
    try:
        texts = scripts(target, megatron, deepspeed, torchtitan)
    except PlannerError as exc:
        assert has_unprintable(name + gpu + note) and "\n" not in str(exc)
        return
    for file_name, text in texts.items():  # every launch script, megatron.sh last
        done, marker = run_script(sandbox, texts[file_name])
        assert not marker.exists(), text
        assert done.returncode == 0, (file_name, done.stderr)
    launched = (sandbox / "fake.log").read_bytes().decode().split("\0")  # megatron.sh ran last
    sent = value.replace(MARKER, str(sandbox / "injected")).replace("\x00", "")
    assert launched[launched.index("--x") + 1] == sent


@given(text=hostile_strings)
def test_loader_refuses_unprintable_names_in_one_line(text):
    try:
        assert check_printable(text, "model name") == text
    except PlannerError as exc:
        assert "\n" not in str(exc) and "model name" in str(exc)
        return
    assert all(c.isprintable() or unicodedata.category(c) == "Zs" for c in text)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hostile_strings)
def test_cli_hardware_and_model_names_cannot_inject(sandbox, tmp_path_factory, name):
    """End to end: a hardware file's ``name`` and a model file's name reach megatron.sh and
    slurm.sbatch only quoted, or are refused with one line and nothing written."""
    work = tmp_path_factory.mktemp("names")
    model_name = name.replace("/", "_").replace("\x00", "")[:100]
    model_file = work / f"{model_name}.json"
    try:
        model_file.write_text(
            json.dumps(
                json.loads(
                    (Path(__file__).parent / "..")
                    .joinpath("fixtures/reference/configs/llama-3.2-1b.json")
                    .read_text()
                )
            )
        )
    except (OSError, ValueError):
        return  # a name the filesystem itself refuses
    hardware = work / "hw.yaml"
    hardware.write_text(
        json.dumps(
            {
                "name": name,
                "memory_gb": 80,
                "peak_tflops": 989,
                "hbm_bandwidth_gbps": 3350,
                "intra_node_bandwidth_gbps": 450,
                "inter_node_bandwidth_gbps": 50,
            }
        )
    )
    out = work / "run"
    result = CliRunner().invoke(
        main, ["--gpus", "8", "--gpu", str(hardware), str(model_file), "-o", str(out), "--format", "json"]
    )
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
        assert result.stdout == "" and not out.exists()
        return
    assert result.exit_code == 0, result.output
    scripts_written = sorted(p for p in out.iterdir() if p.suffix in (".sh", ".sbatch"))
    assert {"megatron.sh", "slurm.sbatch"} <= {p.name for p in scripts_written}
    for script in scripts_written:
        done, marker = run_script(sandbox, script.read_text())
        assert not marker.exists() and done.returncode == 0, done.stderr


def test_control_characters_in_a_hardware_name_are_refused(tmp_path):
    hardware = tmp_path / "hw.yaml"
    hardware.write_text(
        'name: "x\\ntouch /tmp/pwned"\nmemory_gb: 80\npeak_tflops: 989\nhbm_bandwidth_gbps: 3350\n'
        "intra_node_bandwidth_gbps: 450\ninter_node_bandwidth_gbps: 50\n"
    )
    result = CliRunner().invoke(
        main, ["--gpus", "8", "--gpu", str(hardware), "llama3.2-1b", "-o", tmp_path / "o"]
    )
    assert result.exit_code == 2 and "hardware name" in result.output and "U+000A" in result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "o").exists()


def test_rope_scaling_type_cannot_reach_a_comment(tmp_path):
    config = json.loads(
        (Path(__file__).parent.parent / "fixtures/reference/configs/llama-3.2-1b.json").read_text()
    )
    config["rope_scaling"] = {"rope_type": "x\ntouch /tmp/pwned"}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["--gpus", "8", str(path)])
    assert result.exit_code == 2 and "rope_scaling type" in result.output, result.output


@given(text=hostile_strings)
def test_job_names_and_error_text_stay_on_one_line(text):
    assert set(job_name(text)) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert not has_unprintable(escaped(text))
