"""The plan document's ``warnings`` (issue 10 item 7): stable codes, shown by the table, the same
bytes for the same input, and a batch suggestion that removes its own warning."""

import json
import re
from dataclasses import replace

import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.known_accuracy import BY_GPU_GENERATION, MOE, target_of

from conftest import ROOT

CODES = {"global_batch_small", "tp_crosses_nvlink_domain", "cp_crosses_nvlink_domain", "step_time_model_weak"}


def plan_json(*args: str) -> dict:
    result = CliRunner().invoke(main, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def codes(doc: dict) -> list[str]:
    assert all(set(w) == {"code", "message"} and w["code"] in CODES for w in doc["warnings"])
    return [w["code"] for w in doc["warnings"]]


def test_a_well_used_cluster_has_no_warnings():
    doc = plan_json("--gpus", "64", "llama2-13b")
    assert doc["warnings"] == []


def test_the_issues_16384_gpus_warn_that_the_batch_is_small_and_the_suggestion_removes_it():
    """`plan --gpus 16384 llama3.1-405b` (issue 10): the default ~4M-token batch (512 sequences)
    keeps most of 16,384 GPUs waiting in the pipeline bubble."""
    doc = plan_json("--gpus", "16384", "llama3.1-405b")
    assert "global_batch_small" in codes(doc)
    message = next(w["message"] for w in doc["warnings"] if w["code"] == "global_batch_small")
    suggested = int(re.search(r"--global-batch (\d+)", message).group(1))
    assert suggested > doc["training"]["global_batch_size"]
    p = doc["parallelism"]
    pins = ["--tp", p["tp"], "--cp", p["cp"], "--pp", p["pp"], "--vpp", p["vpp"], "--zero", p["zero_stage"]]
    pins += ["--first-stage-layers", p["first_stage_layers"], "--last-stage-layers", p["last_stage_layers"]]
    pins += ["--mbs", p["micro_batch_size"]]
    larger = plan_json("--gpus", "16384", *map(str, pins), "--global-batch", str(suggested), "llama3.1-405b")
    assert "global_batch_small" not in codes(larger)
    assert larger["performance"]["tokens_per_s"] > 2 * doc["performance"]["tokens_per_s"]


def test_inter_node_tp_is_warned():
    doc = plan_json("--gpus", "64", "--tp", "16", "--allow-inter-node-tp", "gpt3-175b")
    assert "tp_crosses_nvlink_domain" in codes(doc)
    within = plan_json("--gpus", "64", "--tp", "8", "gpt3-175b")
    assert "tp_crosses_nvlink_domain" not in codes(within)


def test_cp_beyond_the_nvlink_domain_is_warned():
    args = [
        "--gpus",
        "256",
        "--tp",
        "8",
        "--cp",
        "4",
        "--seq-len",
        "32768",
        "--global-batch",
        "64",
        "llama3-70b",
    ]
    assert "cp_crosses_nvlink_domain" in codes(plan_json(*args))
    args[5] = "1"  # cp 1
    assert "cp_crosses_nvlink_domain" not in codes(plan_json(*args))


def readme_accuracy_line(prefix: str) -> str:
    """A line of the accuracy benchmark's output as the README records it."""
    readme = (ROOT / "README.md").read_text()
    return next(line for line in readme.splitlines() if line.startswith(prefix))


@pytest.mark.parametrize(
    ("args", "figure"),
    [(["--gpus", "64", "--gpu", "gb200", "llama3-70b"], BY_GPU_GENERATION["gb200"])],
)
def test_weak_regimes_quote_the_benchmarks_figure(args, figure):
    """GB200 held out: DGX Cloud v25.05's six rows predicted from the other sources' Blackwell fit."""
    doc = plan_json(*args)
    assert "step_time_model_weak" in codes(doc)
    assert figure.held_out_median_abs_error > target_of(figure)
    message = next(w["message"] for w in doc["warnings"] if w["code"] == "step_time_model_weak")
    assert f"{figure.median_abs_error:.1%}" in message
    assert f"{figure.held_out_median_abs_error:.1%} predicted with constants fitted without" in message
    recorded = readme_accuracy_line("per GPU generation:")
    held_out = readme_accuracy_line("leave-one-family-out per GPU generation:")
    assert f"n={figure.num_entries} {figure.median_abs_error:.1%}" in recorded
    assert f"n={figure.num_entries} {figure.held_out_median_abs_error:.1%}" in held_out
    assert f"target {target_of(figure):.0%}" in message


@pytest.mark.parametrize("gpu", ["h100-80gb", "gb300"])
def test_regimes_within_their_targets_do_not_warn(gpu):
    """H100 and GB300, dense bf16: within 10% in the fit and held out."""
    figure = BY_GPU_GENERATION[gpu.split("-")[0]]
    assert figure.worst_median() <= target_of(figure)
    assert "step_time_model_weak" not in codes(plan_json("--gpus", "64", "--gpu", gpu, "llama3-70b"))


def test_known_accuracy_matches_the_benchmark_output_in_the_readme():
    line = readme_accuracy_line("per GPU generation:")
    held_out = readme_accuracy_line("leave-one-family-out per GPU generation:")
    for generation, figure in BY_GPU_GENERATION.items():
        assert f"{generation.upper()} n={figure.num_entries} {figure.median_abs_error:.1%}" in line
        assert (
            f"{generation.upper()} n={figure.num_entries} {figure.held_out_median_abs_error:.1%}" in held_out
        )
    assert f"MoE rows: n={MOE.num_entries} {MOE.held_out_median_abs_error:.1%}" in readme_accuracy_line(
        "leave-one-family-out MoE rows:"
    )
    assert (
        f"MoE rows: median |error| {MOE.median_abs_error:.1%} (target <= {target_of(MOE):.0%})"
        in (ROOT / "README.md").read_text()
    )


def test_the_table_shows_the_warnings_and_output_is_byte_identical():
    args = ["--gpus", "64", "--tp", "16", "--allow-inter-node-tp", "gpt3-175b", "--format", "table"]
    first, second = (CliRunner().invoke(main, args) for _ in range(2))
    assert first.exit_code == 0 and first.stdout == second.stdout
    assert "warning (tp_crosses_nvlink_domain): tp 16" in first.stdout


def test_the_batch_check_raises_recompute_from_a_per_module_plan_when_memory_needs_it():
    """A selective plan of some modules, on a pipeline whose first stage holds more micro-batches
    as the batch grows: heavier recompute is tried with its own defaults (no modules left over),
    and the warning still names a batch (found by the qwen3-235b-a22b example on 1024 GPUs)."""
    from constraints.recompute import RecomputeModule
    from planner.evaluate import memory
    from planner.hardware import preset
    from planner.plan_warnings import small_batch
    from planner.specs import ParallelConfig, Recompute, TrainingSpec

    from conftest import example

    model, hardware = example("llama2-70b"), preset("h100-80gb")
    config = ParallelConfig(
        tp=4,
        pp=4,
        dp=1,
        recompute=Recompute.SELECTIVE,
        recompute_modules=(RecomputeModule.MLP,),
        sequence_parallel=True,
    )
    training = TrainingSpec(seq_len=4096, global_batch_size=1)
    assert memory(model, hardware, training, config).fits
    assert not memory(model, hardware, replace(training, global_batch_size=16), config).fits
    warning = small_batch(model, hardware, training, config, hardware.step_constants)
    assert warning is not None and warning.code == "global_batch_small"
    assert re.search(r"--global-batch \d+", warning.message)
