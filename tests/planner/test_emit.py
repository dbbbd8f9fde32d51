"""Launch files: Megatron-LM arguments that Megatron-LM's own parser accepted, DeepSpeed configs
that DeepSpeed's own config classes accept, and pinned golden files for the used-by example."""

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from golden_cases import plan_case
from hypothesis import given, settings
from hypothesis import strategies as st

from constraints.pipeline import megatron_split_form
from planner.cli import main
from planner.emit_megatron import megatron_args, megatron_env, user_data_args
from planner.rules import pipeline_sizes, pipeline_splits, valid_tp
from planner.specs import ParallelConfig, Precision, Recompute, TrainingSpec, ZeroStage

from conftest import FIXTURES, fixture
from strategies import models

MEGATRON = fixture("megatron_arguments.json")
FLAGS = MEGATRON["flags"]


def parse(args: list[str]) -> dict[str, str | None]:
    """Flag -> value (None for switches), checked against Megatron's parser definitions."""
    parsed, i = {}, 0
    while i < len(args):
        flag = args[i]
        assert flag in FLAGS, f"{flag} is not a Megatron-LM argument at {MEGATRON['commit']}"
        spec = FLAGS[flag]
        if spec["takes_value"] and spec.get("nargs") in ("+", "*"):  # values up to the next flag
            values = []
            while i + 1 < len(args) and not args[i + 1].startswith("--"):
                values.append(args[i + 1])
                i += 1
            assert values or spec["nargs"] == "*", (flag, "needs a value")
            for value in values:
                assert not spec["choices"] or value in spec["choices"], (flag, value, spec["choices"])
            parsed[flag] = " ".join(values)
            i += 1
        elif spec["takes_value"]:
            value = args[i + 1]
            if spec["type"] == "int":
                int(value)
            elif spec["type"] == "float":
                float(value)
            if spec["choices"]:
                assert value in spec["choices"], (flag, value, spec["choices"])
            parsed[flag] = value
            i += 2
        else:
            parsed[flag] = None
            i += 1
    return parsed


def check_validate_args_rules(args: list[str], env: dict[str, str], gpus: int) -> None:
    """The cross-checks of Megatron-LM's validate_args that a plan can trip."""
    a = parse(args)
    tp, pp = int(a["--tensor-model-parallel-size"]), int(a["--pipeline-model-parallel-size"])
    cp = int(a.get("--context-parallel-size", 1))
    vpp = int(a.get("--num-virtual-stages-per-pipeline-rank", 1))
    assert gpus % (tp * cp * pp) == 0
    dp = gpus // (tp * cp * pp)
    microbatches = int(a["--global-batch-size"]) // (int(a["--micro-batch-size"]) * dp)
    layers = int(a["--num-layers"])
    if "--decoder-first-pipeline-num-layers" in a:  # TransformerConfig: ends, then even middle ranks
        first, last = (
            int(a["--decoder-first-pipeline-num-layers"]),
            int(a["--decoder-last-pipeline-num-layers"]),
        )
        middle = layers - first - last
        assert first > 0 and last > 0 and first % vpp == 0 and last % vpp == 0
        assert (middle == 0) == (pp == 2) and (
            pp == 2 or (middle % (pp - 2) == 0 and middle // (pp - 2) % vpp == 0)
        )
        assert (
            "--account-for-embedding-in-pipeline-split" not in a
            and "--account-for-loss-in-pipeline-split" not in a
        )
    else:  # the embedding and loss, when counted, are one layer slot each
        slots = (
            layers
            + ("--account-for-embedding-in-pipeline-split" in a)
            + ("--account-for-loss-in-pipeline-split" in a)
        )
        assert slots % (pp * vpp) == 0
    if vpp > 1:  # interleaved 1F1B: pp > 1, micro-batches in groups of pp
        assert pp > 1 and microbatches % pp == 0
    if cp > 1:  # load-balanced ring attention splits each sequence into 2 * cp chunks
        assert int(a["--seq-length"]) % (2 * cp) == 0
    if "--sequence-parallel" in a:
        assert tp > 1, "sequence parallelism needs tp > 1"
    if "--tp-comm-overlap" in a:
        assert "--sequence-parallel" in a, "TP overlap can happen only with sequence parallelism"
    if "--overlap-param-gather" in a:  # distributed optimizer or Megatron-FSDP, and the grad overlap
        assert "--overlap-grad-reduce" in a
        assert "--use-distributed-optimizer" in a or "--use-megatron-fsdp" in a
    if "--overlap-moe-expert-parallel-comm" in a:  # TransformerConfig: ep, interleaving, no full recompute
        assert int(a["--expert-model-parallel-size"]) > 1 and (pp == 1 or vpp > 1)
        assert a.get("--recompute-granularity") != "full" and ("--bf16" in a or "--fp16" in a)
        assert "moe" not in args  # a bare "moe" is only ever a --recompute-modules value
    if "--num-experts" in a:  # parallel_state: etp x ep re-split each stage's tp x cp x dp ranks
        ep, etp = int(a.get("--expert-model-parallel-size", 1)), int(a["--expert-tensor-parallel-size"])
        assert int(a["--num-experts"]) % ep == 0 and (tp * cp * dp) % (ep * etp) == 0
        assert int(a["--moe-ffn-hidden-size"]) % etp == 0
        if a["--moe-token-dispatcher-type"] == "flex":  # MoEFlexTokenDispatcher: TPxEP > 1
            assert ep * etp > 1 and a["--moe-flex-dispatcher-backend"] == "deepep"
            assert ep * etp in (2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 144, 160)  # DeepEP's buffer configs
            assert "--moe-pad-expert-input-to-capacity" not in a
    assert int(a["--global-batch-size"]) % (int(a["--micro-batch-size"]) * dp) == 0
    assert int(a["--num-attention-heads"]) % tp == 0
    assert int(a.get("--num-query-groups", a["--num-attention-heads"])) % tp == 0
    fsdp = "--use-megatron-fsdp" in a
    if fsdp:
        assert a["--ckpt-format"] == "fsdp_dtensor" and env.get("CUDA_DEVICE_MAX_CONNECTIONS") != "1"
        assert "--use-distributed-optimizer" not in a
    elif tp > 1 or cp > 1:
        assert env.get("CUDA_DEVICE_MAX_CONNECTIONS") == "1"
    if "--add-qkv-bias" in a:
        assert "--disable-bias-linear" in a
    if "--recompute-method" in a:
        assert a["--recompute-granularity"] == "full"
    if "--grad-reduce-in-bf16" in a:  # read only under --bf16 (validate_args); fp16 keeps its own
        assert "--bf16" in a
    assert not ("--bf16" in a and "--fp16" in a)


@pytest.mark.parametrize(
    "case", MEGATRON["cases"], ids=lambda c: f"{c['model']}-{c['gpus']}-{c.get('tp')}-{c.get('zero')}"
)
def test_emits_exactly_what_megatron_accepted(case):
    """Regenerate tests/fixtures/megatron_arguments.json when this fails on purpose."""
    plan = plan_case(case)
    assert plan["expressible"] == case["expressible"]
    assert plan["args"] == case["args"] and plan["env"] == case["env"]
    if case["expressible"]:
        assert case["accepted"] and case["accepted_with_data"], case.get("error")
        assert plan["layers_per_stage"] == case["layers_per_stage"]  # as Megatron builds them
        check_validate_args_rules(plan["args"], plan["env"], case["gpus"])
        data = MEGATRON["user_data"]
        parse(user_data_args(plan["args"], data["DATA_PATH"], data["TOKENIZER_MODEL"]))


def test_the_golden_set_covers_every_zero_stage_and_recompute():
    args = [c["args"] for c in MEGATRON["cases"] if c.get("accepted")]
    assert any("--use-distributed-optimizer" in a for a in args)
    assert any("optim_grads" in a for a in args) and any("optim_grads_params" in a for a in args)
    assert any("full" in a for a in args) and any("selective" in a for a in args)
    assert any("--fp16" in a for a in args) and any("--group-query-attention" in a for a in args)
    assert any("--context-parallel-size" in a for a in args)
    assert any("--num-virtual-stages-per-pipeline-rank" in a for a in args)
    # MoE layouts and overlap: expert TP above 1, both dispatchers, each overlap switch on and off
    assert any(a[a.index("--expert-tensor-parallel-size") + 1] != "1" for a in args if "--num-experts" in a)
    assert any("flex" in a for a in args) and any("alltoall" in a for a in args)
    assert any("--tp-comm-overlap" in a for a in args)
    assert any("--overlap-moe-expert-parallel-comm" in a for a in args)
    assert any("--overlap-grad-reduce" not in a for a in args)
    assert any("--grad-reduce-in-bf16" in a for a in args)  # bf16 main gradients


@st.composite
def layouts(draw):
    model = draw(models())
    tp = draw(st.sampled_from(valid_tp(model)))
    pp = draw(st.sampled_from([p for p in pipeline_sizes(model) if p <= 16]))

    def buildable(vpp: int) -> list[tuple[int, int]]:  # the splits Megatron-LM can build
        n = model.num_layers
        return [
            (f, la)
            for f, la in pipeline_splits(model, pp, vpp)
            if not f or megatron_split_form(n, pp, vpp, f, la)
        ]

    vpp = draw(st.sampled_from([v for v in range(1, 9) if buildable(v)]))
    first, last = draw(st.sampled_from(buildable(vpp)))
    dp = draw(st.sampled_from([1, 2, 4, 8]))
    mbs = draw(st.sampled_from([1, 2, 4]))
    flash = draw(st.booleans())
    training = TrainingSpec(
        seq_len=draw(st.sampled_from([1024, 4096])),
        global_batch_size=dp * mbs * 8 * pp,  # micro-batches divisible by pp (interleaving)
        precision=draw(st.sampled_from(list(Precision))),
        flash_attention=flash,
        overlap_grad_reduce=(grads := draw(st.booleans())),
        overlap_param_gather=grads and draw(st.booleans()),
        tp_comm_overlap=draw(st.booleans()),
        overlap_moe_expert_parallel_comm=draw(st.booleans()),
    )
    config = ParallelConfig(
        tp=tp,
        pp=pp,
        dp=dp,
        cp=draw(st.sampled_from([1, 2, 4])) if flash else 1,
        vpp=vpp,
        first_stage_layers=first,
        last_stage_layers=last,
        zero_stage=draw(st.sampled_from(list(ZeroStage))),
        recompute=draw(st.sampled_from(list(Recompute))),
        micro_batch_size=mbs,
        sequence_parallel=tp > 1 and draw(st.booleans()),
    )
    return model, training, config


@settings(max_examples=200, deadline=None)
@given(layouts())
def test_any_plan_emits_valid_megatron_arguments(layout):
    model, training, config = layout
    emitted = megatron_args(model, training, config)
    check_validate_args_rules(emitted.content, megatron_env(config), config.num_gpus)


def test_not_expressible_is_never_silent(tmp_path):
    """No stub script: the reason goes to stderr and into the plan, and no Megatron file is written."""
    result = CliRunner().invoke(main, ["--gpus", "8", "mpt-7b", "--format", "yaml", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "megatron cannot run this plan" in result.stderr and "ALiBi" in result.stderr
    megatron_files = ("megatron.sh", "megatron_args.txt", "slurm.sbatch")
    assert not any((tmp_path / name).exists() for name in megatron_files)
    launch = yaml.safe_load((tmp_path / "plan.yaml").read_text())["launch"]["megatron"]
    assert launch["expressible"] is False and launch["files"] == []
    assert any("ALiBi" in note for note in launch["notes"])


GOLDEN = FIXTURES / "golden" / "llama2-13b-64gpu"


def test_golden_files_of_the_used_by_example(tmp_path):
    """plan --gpus 64 --mem 80GB examples/llama2-13b.yaml -o DIR; PLAN_UPDATE_GOLDEN=1 rewrites."""
    result = CliRunner().invoke(
        main, ["--gpus", "64", "--mem", "80GB", "llama2-13b", "--format", "yaml", "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != "plan.yaml")
    if os.environ.get("PLAN_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for old in GOLDEN.iterdir():
            old.unlink()
        for name in names:
            (GOLDEN / name).write_text((tmp_path / name).read_text())
    assert names == sorted(p.name for p in GOLDEN.iterdir())
    for name in names:
        assert (tmp_path / name).read_text() == (GOLDEN / name).read_text(), name
    assert Path(tmp_path / "megatron.sh").stat().st_mode & 0o111


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in MEGATRON["cases"]
        if c.get("accepted") and isinstance(c["built_layer_params"].get("dense", 0), int)
    ],
    ids=lambda c: f"{c['model']}-{c['gpus']}-tp{c.get('tp')}",
)
def test_layer_parameters_per_rank_equal_the_layers_megatron_built(case):
    """Megatron-Core built one decoder layer of each kind on rank 0 of the case's tensor/expert
    groups (linear layers split as on the cluster); the planner's per-rank count must match."""
    from planner.evaluate import layer_params_per_rank
    from planner.io import load_model

    model = load_model(case["model"])
    config = ParallelConfig(
        tp=case["tp"],
        pp=case["pp"],
        dp=case["data_parallel_size"],
        cp=case.get("cp") or 1,
        ep=case.get("ep") or 1,
        etp=case.get("etp") or 1,
    )
    dense, moe, experts = layer_params_per_rank(model, config)
    built = case["built_layer_params"]
    if "dense" in built:
        assert dense == built["dense"]
    if "moe" in built:
        assert moe + experts == built["moe"]
