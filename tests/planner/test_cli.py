"""The command line: exit codes, output formats, files written, one-line errors, no tracebacks."""

import json

import pytest
import yaml
from click.testing import CliRunner

from planner.cli import main

from conftest import EXAMPLES

CONTRACT = {
    "status",
    "model",
    "cluster",
    "training",
    "parallelism",
    "memory_gib",
    "performance",
    "solver",
    "alternatives",
}
FIXED = [
    "--gpus",
    "64",
    "--mem",
    "80GB",
    "--tp",
    "2",
    "--pp",
    "1",
    "--zero",
    "1",
    "--recompute",
    "selective",
    "--mbs",
    "1",
    "--seq-len",
    "4096",
    "--global-batch",
    "1024",
]


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def test_used_by_line_prints_a_plan():
    result = invoke("--gpus", 64, "--mem", "80GB", EXAMPLES / "llama2-13b.yaml", "--format", "yaml")
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.output)
    assert CONTRACT <= set(doc) and doc["status"] == "optimal"
    assert set(doc["memory_gib"]) >= {
        "weights",
        "gradients",
        "optimizer",
        "activations",
        "reserve",
        "total",
        "capacity",
    }
    assert set(doc["parallelism"]) >= {
        "tp",
        "pp",
        "dp",
        "zero_stage",
        "recompute",
        "micro_batch_size",
        "grad_accum_steps",
        "sequence_parallel",
    }


def test_fixed_configuration_json():
    result = invoke(*FIXED, EXAMPLES / "llama2-13b.yaml", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["model"]["params"] == 13_015_864_320
    assert doc["parallelism"] | {} == doc["parallelism"] and doc["parallelism"]["tp"] == 2
    assert doc["parallelism"]["zero_stage"] == 1 and doc["parallelism"]["recompute"] == "selective"
    m = doc["memory_gib"]
    assert m["total"] == pytest.approx(
        m["weights"] + m["gradients"] + m["optimizer"] + m["activations"] + m["reserve"], abs=0.01
    )


def test_not_fitting_still_prints_breakdown_and_exits_1():
    result = invoke(
        "--gpus",
        8,
        "--mem",
        "40GB",
        "--tp",
        1,
        "--pp",
        1,
        "--zero",
        0,
        "--recompute",
        "none",
        "--mbs",
        1,
        "llama2-7b",
        "--format",
        "table",
    )
    assert result.exit_code == 1
    assert "fits: NO" in result.output and "optimizer" in result.output
    assert "without the pinned options: tp=" in result.output
    unpinned = invoke("--gpus", 8, "--mem", "40GB", "llama2-70b", "--format", "table")
    assert unpinned.exit_code == 1 and "fewest GPUs at this memory" in unpinned.output


def test_table_and_output_file(tmp_path):
    result = invoke("--gpus", 64, "llama2-13b", "--format", "table", "-o", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "memory per GPU" in result.output
    written = yaml.safe_load((tmp_path / "run" / "plan.yaml").read_text())
    assert written["status"] == "optimal" and CONTRACT <= set(written)


def test_top_k_gives_distinct_alternatives():
    doc = json.loads(invoke("--gpus", 64, "llama2-13b", "--top", 4, "--format", "json").output)
    layouts = [doc["parallelism"]] + [a["parallelism"] for a in doc["alternatives"]]
    assert len(layouts) == 4 and len({json.dumps(x, sort_keys=True) for x in layouts}) == 4
    times = [doc["performance"]["step_time_s"]] + [
        a["performance"]["step_time_s"] for a in doc["alternatives"]
    ]
    assert times == sorted(times)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--gpus", "64", "--mem", "80XB", "llama2-13b"], "--mem"),
        (["--gpus", "64", "--tp", "3", "llama2-13b"], "--tp 3 does not divide"),
        (["--gpus", "100", "--tp", "5", "llama2-13b"], "--tp 5 does not divide the 13824 FFN width"),
        (["--gpus", "64", "--tp", "16", "gpt3-175b"], "8 GPUs of an NVLink domain"),
        (["--gpus", "64", "--pp", "64", "llama2-13b"], "--pp 64 cannot split the 40 layers"),
        (["--gpus", "8", "--tp", "8", "--pp", "2", "llama2-13b"], "does not divide --gpus 8"),
        (["--gpus", "64", "--gpu", "tpu-v9", "llama2-13b"], "unknown preset 'tpu-v9'"),
        (["--gpus", "64", "no-such-model"], "no bundled model"),
        (["--gpus", "0", "llama2-13b"], "--gpus must be a positive integer"),
        (["--gpus", "64", "--global-batch", "100", "--mbs", "3", "llama2-13b"], "--mbs 3 does not divide"),
        (["--gpus", "64", "--reserve", "200%", "llama2-13b"], "--reserve"),
        (
            ["--gpus", "64", "--tp", "1", "--sequence-parallel", "llama2-13b"],
            "--sequence-parallel needs --tp",
        ),
        (["--gpus", "64", "--etp", "3", "mixtral-8x7b"], "--etp 3: expert tensor parallelism 3 does not"),
        (["--gpus", "64", "--etp", "2", "llama2-13b"], "--etp 2: --etp above 1 splits routed experts"),
        (["--gpus", "64", "--dispatcher", "flex", "llama2-13b"], "--dispatcher flex: the flex (DeepEP)"),
        (["--gpus", "64", "--dispatcher", "deepep", "mixtral-8x7b"], "'deepep' is not one of 'alltoall'"),
        (
            ["--gpus", "64", "--dispatcher", "flex", "--moe-capacity-factor", "1.25", "mixtral-8x7b"],
            "does not pad experts to capacity",
        ),
        (
            ["--gpus", "256", "--ep", "256", "--dispatcher", "flex", "deepseek-v3"],
            "DeepEP has no buffer configuration for a dispatch group of etp x ep = 256 ranks",
        ),
        (
            ["--gpus", "64", "--dispatcher", "flex", "--framework", "deepspeed", "mixtral-8x7b"],
            "Megatron-Core's; use --framework megatron",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(args, fragment):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert result.output.strip().count("\n") == 0 and result.output.startswith("Error: ")


def test_malformed_model_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_type: llama\nhidden_size: 4096\n")
    result = invoke("--gpus", 8, bad)
    assert result.exit_code == 2 and "bad.yaml: missing key 'num_attention_heads'" in result.output


def test_every_example_plans_on_its_own_cluster():
    for path in sorted(EXAMPLES.glob("*.yaml")):
        result = invoke("--gpus", 1024, path, "--format", "json")
        assert result.exit_code in (0, 1), (path, result.output)
        assert json.loads(result.output)["model"]["params"] > 0


def test_help_has_examples():
    result = invoke("--help")
    assert result.exit_code == 0 and "Examples:" in result.output and "--gpus 64 --mem 80GB" in result.output


def test_time_limit_never_reports_an_unproven_infeasible():
    result = invoke("--gpus", 1024, "llama3-70b", "--time-limit", "0.000001", "--format", "json")
    if result.exit_code == 0:
        assert json.loads(result.output)["status"] in ("optimal", "feasible")
    else:
        assert result.exit_code == 2 and "--time-limit" in result.output


def test_plan_yaml_round_trips_to_the_json_document(tmp_path):
    as_json = json.loads(invoke("--gpus", 64, "llama2-13b", "--top", 2, "--format", "json").output)
    invoke("--gpus", 64, "llama2-13b", "--top", 2, "--format", "json", "-o", tmp_path)
    as_yaml = yaml.safe_load((tmp_path / "plan.yaml").read_text())
    assert as_yaml == as_json


def test_deepspeed_framework_plans_without_sequence_parallel(tmp_path):
    result = invoke(
        "--gpus", 64, "--framework", "deepspeed", "--tp", 2, "llama2-13b", "--format", "json", "-o", tmp_path
    )
    doc = json.loads(result.stdout)  # the "wrote ..." line goes to stderr
    assert result.exit_code == 0 and doc["parallelism"]["sequence_parallel"] is False
    assert doc["launch"]["deepspeed"]["expressible"] is True
    written = json.loads((tmp_path / "deepspeed.json").read_text())
    assert written["tensor_parallel"] == {"autotp_size": 2}
    assert written["train_batch_size"] == doc["training"]["global_batch_size"]


@pytest.mark.parametrize("fmt", ["table", "yaml", "json"])
def test_the_same_input_gives_byte_identical_output(tmp_path, fmt):
    """Two runs print the same bytes and write the same files; the solver's wall time appears only
    with --timing."""
    args = ("--gpus", 64, "llama2-13b", "--top", 3, "--format", fmt)
    first, second = invoke(*args, "-o", tmp_path / "a"), invoke(*args, "-o", tmp_path / "b")
    assert first.exit_code == second.exit_code == 0 and first.stdout == second.stdout
    for name in sorted(p.name for p in (tmp_path / "a").iterdir()):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (
        "wall_time_s" not in first.stdout and "wall_time_s" not in (tmp_path / "a" / "plan.yaml").read_text()
    )
    timed = invoke("--gpus", 64, "llama2-13b", "--format", "json", "--timing")
    assert json.loads(timed.stdout)["solver"]["wall_time_s"] >= 0


def test_an_nvl72_rack_plans_with_a_default_batch_it_can_divide():
    """``plan --gpus 72 --pp 1 llama3-8b``: the ~4M-token default (512 x 8192) has no dp divisor at
    72 GPUs without pipelining (with it, 9 uneven stages give dp 8); the plan takes the nearest
    multiple of 72 and says so."""
    result = invoke("--gpus", 72, "--pp", 1, "llama3-8b", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (
        doc["training"]["global_batch_size"] == 504
        and "multiple of the 72 GPUs" in doc["training"]["global_batch_note"]
    )
    given = json.loads(invoke("--gpus", 64, "llama3-8b", "--global-batch", 512, "--format", "json").stdout)
    assert "global_batch_note" not in given["training"]


def test_the_diagnosis_suggests_offload_where_allow_offload_fits():
    """13B on 8 x 24 GB: nothing fits without offload; the diagnosis names the offload plan, and
    --allow-offload plans exactly that."""
    result = invoke("--gpus", 8, "--mem", "24GB", "llama2-13b", "--format", "json")
    assert result.exit_code == 1
    suggested = json.loads(result.stdout)["diagnosis"]["offload_plan"]
    assert suggested["optimizer_offload"] or suggested["activation_offload"]
    allowed = invoke("--gpus", 8, "--mem", "24GB", "--allow-offload", "llama2-13b", "--format", "json")
    planned = json.loads(allowed.stdout)["parallelism"]
    planned.pop("layers_per_stage")  # the plan's own list of what first/last_stage_layers say
    assert allowed.exit_code == 0 and planned == suggested


@pytest.mark.parametrize("limit", ["nan", "inf", "0", "-1"])
def test_a_time_limit_that_is_not_a_positive_number_is_one_line(limit):
    result = invoke("--gpus", 64, "llama2-13b", "--time-limit", limit)
    assert result.exit_code == 2 and result.output.startswith("Error: --time-limit")
    assert result.output.count("\n") == 1


@pytest.mark.parametrize(
    "args, works",
    [
        (["--gpus", 64, "--seq-len", 4100, "--tp", 8, "llama3-8b"], "use one of [1, 2, 4] or"),
        (
            ["--gpus", 64, "--seq-len", 4100, "--tp", 4, "--cp", 2, "llama3-8b"],
            "use one of [1, 2] (with --cp 2)",
        ),
        (["--gpus", 72, "--gpu", "gb200", "--seq-len", 2048, "--tp", 12, "gpt3-175b"], "[1, 2, 4, 8]"),
    ],
)
def test_a_pinned_tp_that_cannot_split_the_sequence_is_one_line(args, works):
    """Megatron asserts in its first forward that tp divides each context-parallel rank's tokens
    with sequence parallelism; the pin is refused before the search, with the tp that would work,
    and --no-sequence-parallel plans it."""
    result = invoke(*args)
    assert result.exit_code == 2 and result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"Error: --tp {args[args.index('--tp') + 1]}: with sequence parallelism")
    assert works in result.stderr and "--no-sequence-parallel" in result.stderr
    planned = invoke(*args, "--no-sequence-parallel", "--format", "json")
    assert planned.exit_code == 0 and json.loads(planned.stdout)["parallelism"]["sequence_parallel"] is False


USAGE_ERRORS = [
    (["--gpus", "8", "--bogus", "llama3.2-1b"], "--bogus"),
    (["--gpus", "8"], "MODEL"),
    (["llama3.2-1b"], "--gpus"),
    (["--gpus", "eight", "llama3.2-1b"], "--gpus"),
    (["--gpus", "8", "--zero", "5", "llama3.2-1b"], "--zero"),
    (["--gpus", "8", "--recompute", "some", "llama3.2-1b"], "--recompute"),
    (["--gpus", "8", "--format", "xml", "llama3.2-1b"], "--format"),
    (["--gpus", "8", "llama3.2-1b", "extra"], "extra"),
    (["--gpus", "8", "--gpu", "", "llama3.2-1b"], "--gpu"),
    (["--gpus", "8", "--gpu", ".", "llama3.2-1b"], "--gpu"),
    (["--gpus", "8", "--gpu", "h100-80", "llama3.2-1b"], "did you mean 'h100-80gb'"),
    (["--gpus", "8", "llama-3.2-1b"], "did you mean 'llama3.2-1b'"),
    (["--gpus", "8", "", "-o", "x"], "MODEL is empty"),
    (["sweep"], "MODEL"),
    (["sweep", "llama3.2-1b", "--format", "xml"], "--format"),
    (["sweep", "llama3.2-1b", "--gpus", "8", "--chart", "."], "--chart"),
    (["sweep", "llama3.2-1b", "--gpus", "8", "--chart", ""], "--chart"),
    (["compare", "a.yaml"], "PLAN_B"),
    (["compare", "no-such-a.yaml", "no-such-b.yaml"], "no-such-a.yaml"),
    (["serve", "llama3.2-1b", "--weights", "int3"], "--weights"),
    (["serve"], "MODEL"),
    (["train", "--gpus", "8", "--tp", "x", "llama3.2-1b"], "--tp"),
]


@pytest.mark.parametrize("args, fragment", USAGE_ERRORS)
def test_usage_errors_are_one_line_on_stderr_and_exit_2(args, fragment):
    """Click's own errors too: no Usage:/Try lines, nothing on stdout, the option named."""
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output and result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert fragment in result.stderr, result.stderr


def test_moe_pins_reach_the_plan_and_the_megatron_arguments(tmp_path):
    result = invoke(
        "--gpus", "64", "--seq-len", "4096", "--tp", "2", "--etp", "2", "--ep", "8", "--dispatcher", "flex",
        "--no-overlap-grad-reduce", "--tp-comm-overlap", "--format", "json", "-o", tmp_path, "qwen3-30b-a3b",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["parallelism"]["etp"], doc["parallelism"]["dispatcher"]) == (2, "flex")
    assert doc["training"]["overlap_grad_reduce"] is False and doc["training"]["tp_comm_overlap"] is True
    args = (tmp_path / "megatron_args.txt").read_text().split()
    assert args[args.index("--expert-tensor-parallel-size") + 1] == "2"
    assert args[args.index("--moe-token-dispatcher-type") + 1] == "flex"
    assert "--overlap-grad-reduce" not in args and "--overlap-param-gather" not in args
    assert "--tp-comm-overlap" in args


def test_bf16_gradients_reach_the_memory_the_time_and_the_megatron_arguments(tmp_path):
    """--grad-reduce-in-bf16 halves the Megatron gradient buffer (4 to 2 bytes per parameter: the
    buffer takes the bf16 parameters' dtype) and the data-parallel gradient traffic, and is emitted."""
    pinned = ["--gpus", "64", "--tp", "2", "--pp", "1", "--cp", "1", "--zero", "1", "--mbs", "1"]
    pinned += ["--recompute", "none", "--format", "json", "llama2-13b"]
    fp32 = json.loads(invoke(*pinned).stdout)
    result = invoke("--grad-reduce-in-bf16", "-o", tmp_path, *pinned)
    assert result.exit_code == 0, result.output
    bf16 = json.loads(result.stdout)
    assert (
        fp32["training"]["grad_reduce_in_bf16"] is False and bf16["training"]["grad_reduce_in_bf16"] is True
    )
    assert bf16["memory_gib"]["gradients"] == pytest.approx(fp32["memory_gib"]["gradients"] / 2, rel=1e-3)
    assert bf16["performance"]["breakdown"]["dp_comm"] < fp32["performance"]["breakdown"]["dp_comm"]
    assert "--grad-reduce-in-bf16" in (tmp_path / "megatron_args.txt").read_text().split()
    table = invoke("--grad-reduce-in-bf16", *pinned[:-3], "--format", "table", "llama2-13b").stdout
    assert "bf16, megatron, bf16 gradients" in table.splitlines()[3]


def test_bf16_gradients_need_bf16_or_fp8_training():
    result = CliRunner().invoke(
        main, ["--gpus", "8", "--precision", "fp16", "--grad-reduce-in-bf16", "llama3.2-1b"]
    )
    assert result.exit_code == 2 and result.stderr.startswith("Error: --grad-reduce-in-bf16"), result.output
    assert result.stderr.count("\n") == 1
