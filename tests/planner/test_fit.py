"""``plan calibrate``: the fitter recovers known constants; runs files are checked strictly; the
fitted profile is what ``plan --gpu PROFILE`` then plans with."""

import json
import math
from dataclasses import replace

import pytest
import yaml
from click.testing import CliRunner

from planner.cli import main
from planner.errors import PlannerError
from planner.fit import bound_for, default_fit, fit_constants, loss, predicted_s
from planner.hardware import hardware_to_mapping, preset
from planner.io import load_hardware, load_model
from planner.runs import MeasuredRun, runs_from_list
from planner.specs import ParallelConfig, Recompute, TrainingSpec, ZeroStage

from conftest import EXAMPLES

START = preset("h100-80gb").step_constants  # what calibrate starts from for these runs' GPU
SHIFT = 0.2  # of a constant's search range: the made-up cluster's constants sit this far from the defaults
SENSITIVITY = 2e-3  # mean |log error| a 10% change of a constant must cause for the runs to determine it


def shifted(name):
    """A value of constant ``name`` away from its default, inside its search range."""
    bound = bound_for(name, getattr(START, name))
    unit = bound.unit(getattr(START, name))
    return bound.value(unit + SHIFT if unit + SHIFT <= 1 else unit - SHIFT)


# (model, seq_len, global_batch, tp, pp, dp, micro-batch, recompute): model widths, tensor
# parallelism, data parallelism and sequence lengths vary, so every constant matters somewhere.
LAYOUTS = [
    ("llama2-7b", 4096, 256, 1, 1, 8, 1, "selective"),
    ("llama2-7b", 4096, 64, 2, 1, 32, 1, "selective"),
    ("llama3-8b", 8192, 128, 4, 1, 16, 1, "none"),
    ("llama2-13b", 4096, 512, 8, 1, 8, 2, "none"),
    ("llama2-70b", 4096, 128, 8, 4, 4, 1, "full"),
    ("llama3.2-1b", 2048, 256, 1, 1, 64, 4, "none"),
    ("llama2-13b", 4096, 64, 2, 2, 16, 1, "selective"),
    ("llama3-70b", 8192, 256, 8, 8, 2, 1, "full"),
]


def synthetic_runs(constants):
    """Runs whose 'measured' step time is the model's with ``constants`` (the fitter's test)."""
    runs = []
    for model, seq, batch, tp, pp, dp, mbs, recompute in LAYOUTS:
        run = MeasuredRun(
            name=f"{model} tp{tp} pp{pp} dp{dp}",
            model=load_model(model),
            hardware=preset("h100-80gb"),
            training=TrainingSpec(seq_len=seq, global_batch_size=batch),
            config=ParallelConfig(
                tp=tp,
                pp=pp,
                dp=dp,
                micro_batch_size=mbs,
                recompute=Recompute(recompute),
                zero_stage=ZeroStage.OPTIMIZER,
                sequence_parallel=tp > 1,
            ),
            step_time_s=1.0,
        )
        runs.append(replace(run, step_time_s=predicted_s(run, constants)))
    return runs


def determined(runs):
    """The default-fitted constants these runs pin down: a 10% change moves their error."""
    return [
        name
        for name in default_fit()
        if loss(runs, replace(START, **{name: 1.1 * getattr(START, name)})) > SENSITIVITY
    ]


FITTED = determined(synthetic_runs(START))
TRUE = replace(START, **{name: shifted(name) for name in FITTED})
"""A made-up cluster: every constant the runs determine moved away from its default."""


def runs_document(runs):
    """The runs as a runs file holds them."""
    return [
        {
            "name": run.name,
            "model": run.model.name,
            "gpu": "h100-80gb",
            "gpus": run.config.num_gpus,
            "parallelism": {
                "tp": run.config.tp,
                "pp": run.config.pp,
                "dp": run.config.dp,
                "zero_stage": int(run.config.zero_stage),
                "recompute": run.config.recompute.value,
                "micro_batch_size": run.config.micro_batch_size,
                "sequence_parallel": run.config.sequence_parallel,
            },
            "seq_len": run.training.seq_len,
            "global_batch": run.training.global_batch_size,
            "precision": "bf16",
            "step_time_s": run.step_time_s,
        }
        for run in runs
    ]


def test_the_runs_determine_most_default_constants():
    assert len(FITTED) >= 3, FITTED


def test_fit_recovers_the_constants_the_runs_were_made_with():
    runs = synthetic_runs(TRUE)
    assert loss(runs, START) > 0.05  # the defaults are visibly wrong for this cluster
    fitted = fit_constants(runs, START, FITTED)
    assert loss(runs, fitted) < 1e-4
    for name in FITTED:
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE, name), rel=0.01), name


def test_fit_leaves_unnamed_constants_alone():
    fitted = fit_constants(synthetic_runs(TRUE), START, FITTED[:1])
    for name in FITTED[1:]:
        assert getattr(fitted, name) == getattr(START, name)
    assert getattr(fitted, FITTED[0]) != getattr(START, FITTED[0])


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """``plan calibrate`` on a runs file of synthetic runs, writing a profile."""
    folder = tmp_path_factory.mktemp("calibrate")
    runs_file = folder / "runs.yaml"
    runs_file.write_text(yaml.safe_dump(runs_document(synthetic_runs(TRUE)), sort_keys=False))
    result = invoke("calibrate", runs_file, "--fit", ",".join(FITTED), "-o", folder / "cluster.yaml")
    return result, folder / "cluster.yaml"


def test_calibrate_prints_errors_before_and_after(calibrated):
    result, _ = calibrated
    assert result.exit_code == 0, result.output
    assert "median |error|:" in result.stdout
    assert result.stdout.splitlines()[-1 - len(FITTED) - 1].endswith("0.0% after")
    assert "llama3-70b tp8 pp8 dp2" in result.stdout


def test_calibrate_writes_a_profile_with_the_fitted_constants(calibrated):
    _, profile_file = calibrated
    hardware = load_hardware(str(profile_file))
    assert hardware.name == "h100-80gb" and hardware.peak_flops == preset("h100-80gb").peak_flops
    for name in FITTED:
        assert hardware.profile.constants[name] == pytest.approx(getattr(TRUE, name), rel=0.01)
    assert hardware.profile.provenance["constants"].startswith("fit: plan calibrate ")


def test_plan_with_the_fitted_profile_reproduces_a_measured_run(calibrated):
    _, profile_file = calibrated
    # The run the GPU's own constants miss most: only the fitted ones reproduce it.
    run = max(synthetic_runs(TRUE), key=lambda r: abs(math.log(predicted_s(r, START) / r.step_time_s)))
    assert abs(predicted_s(run, START) / run.step_time_s - 1) > 0.05
    c = run.config
    result = invoke(
        "--gpus", c.num_gpus, "--gpu", profile_file, run.model.name, "--tp", c.tp, "--pp", c.pp,
        "--dp", c.dp, "--cp", c.cp, "--vpp", c.vpp, "--zero", int(c.zero_stage), "--recompute",
        c.recompute.value, "--mbs", c.micro_batch_size, "--seq-len", run.training.seq_len,
        "--global-batch", run.training.global_batch_size, "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["performance"]["step_time_s"] == pytest.approx(
        run.step_time_s, rel=0.005
    )


def test_the_example_runs_file_calibrates():
    result = invoke(
        "calibrate", EXAMPLES / "calibration" / "mpt-7b-a100.yaml", "--fit", "gemm_max_efficiency"
    )
    assert result.exit_code == 0, result.output
    assert "fitting gemm_max_efficiency to 7 runs (a100-80gb)" in result.stdout


def test_tokens_per_second_is_the_whole_clusters():
    document = runs_document(synthetic_runs(TRUE)[:1])
    run = document[0]
    tokens_per_s = run["global_batch"] * run["seq_len"] / run.pop("step_time_s")
    run["tokens_per_s"] = tokens_per_s
    [parsed] = runs_from_list(document, "runs.yaml", EXAMPLES, None)
    assert parsed.step_time_s == pytest.approx(synthetic_runs(TRUE)[0].step_time_s)


def changed(path, value):
    """A one-run runs document with ``path`` (``key`` or ``parallelism.key``) set, or deleted for ``...``."""
    run = runs_document(synthetic_runs(TRUE)[:1])[0]
    *parent, key = path.split(".")
    target = run[parent[0]] if parent else run
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return [run]


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("colour", "red", r"runs\[0\] \(llama2-7b tp1 pp1 dp8\): unknown key\(s\) colour; use name, model"),
        ("gpus", ..., r"runs\[0\] \(llama2-7b tp1 pp1 dp8\): missing key 'gpus'"),
        ("gpus", 16, r"parallelism: tp\*cp\*pp\*dp = 8, not the run's gpus 16"),
        ("gpus", -8, r"runs\[0\] \(llama2-7b tp1 pp1 dp8\).gpus must be a positive integer, got -8"),
        ("seq_len", "4k", r"\.seq_len must be a positive integer, got '4k'"),
        ("precision", "fp4", r"\.precision must be one of bf16, fp16, fp32, fp8, got 'fp4'"),
        ("step_time_s", ..., r"give exactly one of step_time_s or tokens_per_s"),
        ("tokens_per_s", 1000.0, r"give exactly one of step_time_s or tokens_per_s"),
        ("step_time_s", float("nan"), r"\.step_time_s must be a positive finite number, got nan"),
        ("step_time_s", 0, r"\.step_time_s must be a positive finite number, got 0"),
        ("global_batch", 100, r"global_batch 100 is not a multiple of dp\*micro_batch_size = 8"),
        ("model", "llama9", r"\.model: model 'llama9': no such file, and no bundled model"),
        ("gpu", "tpu-v9", r"\.gpu: unknown preset 'tpu-v9'"),
        ("parallelism.tq", 2, r"\.parallelism: unknown key\(s\) tq; use tp, pp, dp"),
        ("parallelism.tp", ..., r"\.parallelism: missing key 'tp'"),
        ("parallelism.tp", 0, r"\.parallelism\.tp must be a positive integer, got 0"),
        ("parallelism.recompute", "some", r"\.parallelism\.recompute must be one of none, selective, full"),
        ("parallelism.zero_stage", 4, r"\.parallelism\.zero_stage must be one of 0, 1, 2, 3, got 4"),
        ("parallelism.sequence_parallel", "on", r"\.parallelism\.sequence_parallel must be true or false"),
        ("grad_reduce_in_bf16", "yes", r"\.grad_reduce_in_bf16 must be true or false"),
        (
            "parallelism.grad_accum_steps",
            3,
            r"grad_accum_steps is 3, but global_batch / \(dp\*micro_batch_size\) = 32",
        ),
    ],
)
def test_bad_runs_are_one_line_errors_naming_run_and_key(path, value, message):
    with pytest.raises(PlannerError, match=message) as caught:
        runs_from_list(changed(path, value), "runs.yaml", EXAMPLES, None)
    assert str(caught.value).startswith("runs.yaml: ") and "\n" not in str(caught.value)


def test_a_run_states_bf16_gradients():
    """NVIDIA's recipes reduce bf16 gradients (``--grad-reduce-in-bf16``): a run says so, and the
    model then holds half the Megatron gradient bytes; fp16 runs cannot."""
    [run] = changed("grad_reduce_in_bf16", True)
    [parsed] = runs_from_list([run], "runs.yaml", EXAMPLES, None)
    assert parsed.training.grad_reduce_in_bf16 is True
    run["precision"] = "fp16"
    with pytest.raises(PlannerError, match=r"\.grad_reduce_in_bf16 needs precision bf16 or fp8, got fp16"):
        runs_from_list([run], "runs.yaml", EXAMPLES, None)


@pytest.mark.parametrize("document", [[], {"runs": []}, "runs", [3]])
def test_a_runs_file_is_a_list_of_mappings(document):
    with pytest.raises(
        PlannerError, match=r"runs.yaml: (a runs file is a non-empty YAML list|runs\[0\] must be)"
    ):
        runs_from_list(document, "runs.yaml", EXAMPLES, None)


def test_cli_errors_are_one_line_exit_2(tmp_path):
    runs_file = tmp_path / "runs.yaml"
    document = runs_document(synthetic_runs(TRUE)[:2])
    document[1]["gpu"] = "a100-80gb"
    runs_file.write_text(yaml.safe_dump(document))
    mixed = invoke("calibrate", runs_file)
    assert mixed.exit_code == 2
    assert (
        mixed.output
        == f"Error: {runs_file}: runs use several GPUs (h100-80gb, a100-80gb); pass --gpu to say "
        "which one the profile is for\n"
    )
    unknown = invoke("calibrate", runs_file, "--gpu", "h100-80gb", "--fit", "gemm_speed")
    assert unknown.exit_code == 2 and unknown.output.startswith(
        "Error: --fit: unknown constant(s) gemm_speed; use"
    )
    missing = invoke("calibrate", tmp_path / "none.yaml")
    assert missing.exit_code == 2 and missing.output.startswith("Error: ") and missing.output.count("\n") == 1
    assert not list(tmp_path.glob("*.yaml.*"))  # nothing half-written


def test_files_named_in_a_runs_file_are_found_beside_it(tmp_path):
    (tmp_path / "my-model.yaml").write_text((EXAMPLES / "llama2-7b.yaml").read_text())
    (tmp_path / "my-gpu.yaml").write_text(yaml.safe_dump(hardware_to_mapping(preset("h100-80gb"))))
    [run] = runs_document(synthetic_runs(TRUE)[:1])
    run |= {"model": "my-model.yaml", "gpu": "my-gpu.yaml"}
    [parsed] = runs_from_list([run], "runs.yaml", tmp_path, None)
    assert parsed.model.num_layers == load_model("llama2-7b").num_layers
    assert parsed.hardware.peak_flops == preset("h100-80gb").peak_flops
