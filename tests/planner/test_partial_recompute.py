"""Partial recompute through the planner: the layout fields, their memory and time on every stage,
the search (CP-SAT agreeing with brute force), the CLI pins and the launch flags."""

from dataclasses import replace

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.cli import main
from planner.errors import PlannerError
from planner.evaluate import stage_activation_bytes, stage_layers
from planner.hardware import preset
from planner.io import load_model
from planner.layout import config_from_block, parallelism_block
from planner.performance import performance
from planner.plan import Request, run
from planner.space import Pins, build_space, compile_terms
from planner.specs import ParallelConfig, Recompute, RecomputeModule, TrainingSpec, ZeroStage

LLAMA70 = load_model("llama3-70b")
TRAINING = TrainingSpec(seq_len=8192, global_batch_size=512)


def config(**kw) -> ParallelConfig:
    base = dict(tp=4, pp=4, dp=4, vpp=1, zero_stage=ZeroStage.OPTIMIZER, sequence_parallel=True)
    return ParallelConfig(**(base | kw))


def activations(cfg: ParallelConfig, stage: int = 0) -> float:
    return sum(stage_activation_bytes(LLAMA70, TRAINING, cfg, stage).values())


def step_s(cfg: ParallelConfig) -> float:
    return performance(LLAMA70, preset("h100-80gb"), TRAINING, cfg).step_time_s


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([1, 2, 4]), st.data())
def test_more_recomputed_layers_never_need_more_memory_nor_less_time(vpp, data):
    chunk = LLAMA70.num_layers // (4 * vpp)
    n = data.draw(st.integers(1, chunk - 2))
    fewer = config(vpp=vpp, recompute=Recompute.FULL, recompute_num_layers=n)
    more = config(vpp=vpp, recompute=Recompute.FULL, recompute_num_layers=n + 1)
    none, full = config(vpp=vpp), config(vpp=vpp, recompute=Recompute.FULL)
    for stage in (0, 1, 3):
        assert (
            activations(full, stage)
            <= activations(more, stage)
            < activations(fewer, stage)
            < activations(none, stage)
        )
    assert step_s(none) < step_s(fewer) < step_s(more) < step_s(full)


def test_block_method_counts_each_stage_by_its_own_chunk():
    """Uneven stages: N of each chunk is a larger share of a lighter end stage."""
    model = load_model("llama3.1-405b")
    cfg = ParallelConfig(
        tp=8,
        pp=16,
        dp=64,
        zero_stage=ZeroStage.OPTIMIZER,
        sequence_parallel=True,
        first_stage_layers=7,
        last_stage_layers=7,
        recompute=Recompute.FULL,
        recompute_num_layers=7,
    )
    training = TrainingSpec(seq_len=8192, global_batch_size=2048)
    assert stage_layers(model, cfg)[:2] == (7, 8)
    first = stage_activation_bytes(model, training, cfg, 0)
    full = stage_activation_bytes(
        model, training, ParallelConfig(**{**_fields(cfg), "recompute_num_layers": 0}), 0
    )
    assert first["layers"] == full["layers"]  # every layer of the 7-layer first stage
    middle = stage_activation_bytes(model, training, cfg, 1)["layers"]
    middle_full = stage_activation_bytes(
        model, training, ParallelConfig(**{**_fields(cfg), "recompute_num_layers": 0}), 1
    )["layers"]
    assert middle > middle_full  # one of the middle stages' 8 layers keeps everything


def _fields(cfg: ParallelConfig) -> dict:
    return {name: getattr(cfg, name) for name in cfg.__dataclass_fields__}


def test_module_recompute_frees_memory_and_costs_its_forward():
    dense = config(recompute=Recompute.SELECTIVE, recompute_modules=(RecomputeModule.MLP,))
    default = config(recompute=Recompute.SELECTIVE)
    assert activations(dense) < activations(default) == activations(config())  # FlashAttention: no scores
    assert step_s(config()) < step_s(default) < step_s(dense)


def test_the_document_keys_round_trip_and_come_last():
    cfg = config(recompute=Recompute.FULL, recompute_num_layers=3)
    block = parallelism_block(cfg, 4)
    assert list(block)[-2:] == ["recompute_num_layers", "recompute_modules"]
    assert block["recompute"] == "full" and block["recompute_num_layers"] == 3
    assert config_from_block(block, "parallelism") == cfg
    moe = config(
        recompute=Recompute.SELECTIVE, recompute_modules=(RecomputeModule.LAYERNORM, RecomputeModule.MOE_ACT)
    )
    assert parallelism_block(moe, 4)["recompute_modules"] == ["layernorm", "moe_act"]
    assert config_from_block({"tp": 4, "pp": 4, "dp": 4, "recompute": "full"}, "p").recompute_num_layers == 0


def test_search_finds_partial_recompute_where_none_does_not_fit_and_brute_force_agrees():
    """Llama 3 70B on 64 H100s at 8k with tp 4 pp 4: no recompute does not fit, full recompute
    does; the best plan recomputes some layers, and CP-SAT and brute force pick the same."""
    hardware = preset("h100-80gb")
    pins = Pins(tp=4, pp=4, cp=1, micro_batch_size=1, zero_stage=ZeroStage.OPTIMIZER)
    req = Request(model=LLAMA70, hardware=hardware, training=TRAINING, gpus=64, pins=pins, top=3)
    solved, brute = run(req), run(replace(req, exhaustive=True))
    chosen = [solved.space.config(*c.indices) for c in solved.chosen]
    assert [c.indices for c in solved.chosen] == [c.indices for c in brute.chosen]
    best = chosen[0]
    assert best.recompute is Recompute.FULL and 0 < best.recompute_num_layers, best
    space = build_space(LLAMA70, TRAINING, 64, pins, 8)
    terms = compile_terms(space, LLAMA70, hardware, TRAINING)
    full_rows = [k for k in terms.activations if space.recomputes[k[1]][:2] == (Recompute.FULL, 0)]
    assert full_rows  # full recompute of every layer is tabulated too, and loses on time


def plan_cli(*args: str):
    return CliRunner().invoke(
        main, ["--gpus", "64", "--seq-len", "8192", "--format", "yaml", *args, "llama3-70b"]
    )


def test_cli_pins_and_megatron_flags(tmp_path):
    result = plan_cli("--tp", "4", "--pp", "4", "--vpp", "5", "--recompute-layers", "2", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.stdout)
    assert doc["parallelism"]["recompute"] == "full" and doc["parallelism"]["recompute_num_layers"] == 2
    args = (tmp_path / "megatron_args.txt").read_text().split()
    at = args.index("--recompute-method")
    assert args[at : at + 4] == ["--recompute-method", "block", "--recompute-num-layers", "2"]
    assert "deepspeed.json" not in {p.name for p in tmp_path.iterdir()}  # DeepSpeed cannot run it


def test_cli_module_pins():
    result = plan_cli("--tp", "4", "--recompute-modules", "mlp,core_attn")
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.stdout)
    assert doc["parallelism"]["recompute"] == "selective"
    assert doc["parallelism"]["recompute_modules"] == ["core_attn", "mlp"]


def test_bad_recompute_pins_are_one_line_errors():
    cases = [
        (["--recompute-modules", "attn"], "core_attn, layernorm, mlp, moe_act, moe, shared_experts"),
        (["--recompute-modules", "moe_act"], "MoE layers; this model has none"),
        (["--recompute", "selective", "--recompute-layers", "2"], "--recompute full"),
        (["--recompute", "none", "--recompute-modules", "mlp"], "--recompute selective"),
        (["--recompute-layers", "0"], "--recompute-layers"),
        (["--pp", "8", "--recompute-layers", "11"], "use 1 to 10"),
        (["--framework", "deepspeed", "--recompute-layers", "2"], "--framework megatron"),
    ]
    for args, expected in cases:
        result = plan_cli(*args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], (args, lines)
        assert "Traceback" not in result.output


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=40),
    st.tuples(st.integers(0, 400), st.integers(0, 400)),
    st.data(),
)
def test_fewest_layers_that_fit_equal_a_linear_scan(drops, states_row, data):
    """The block-method search (a guess from the ends, then bisection) finds what scanning every
    count finds, on any memory that falls with the layers recomputed, from any lower bound that
    holds."""
    from planner.space import _fewest_that_fit

    rows, current = [], [1000, 1000]
    for drop in drops:
        current = [c - d for c, d in zip(current, drop, strict=True)]
        rows.append(tuple(current))
    capacity = 1000
    fitting = [
        i
        for i, row in enumerate(rows)
        if all(a + s <= capacity for a, s in zip(row, states_row, strict=True))
    ]
    expected = fitting[0] if fitting else None
    lo = data.draw(st.integers(0, expected if expected is not None else len(rows) - 1))
    assert _fewest_that_fit(rows.__getitem__, lo, len(rows), states_row, capacity) == expected


DEEPSEEK = load_model("deepseek-v3")
DEEPSEEK_TRAINING = TrainingSpec(seq_len=4096, global_batch_size=2048)


def deepseek(modules: tuple[RecomputeModule, ...]) -> ParallelConfig:
    return ParallelConfig(
        tp=8,
        pp=1,
        dp=128,
        ep=64,
        etp=8,
        zero_stage=ZeroStage.OPTIMIZER,
        sequence_parallel=True,
        recompute=Recompute.SELECTIVE,
        recompute_modules=modules,
    )


def test_mla_up_proj_frees_memory_and_costs_the_up_projections():
    """DeepSeek-V3 with NVIDIA's recipe modules: adding mla_up_proj lowers the activations and
    lengthens the step (the rerun up-projections: more hardware FLOPs, the same model FLOPs)."""
    recipe = (RecomputeModule.LAYERNORM, RecomputeModule.MOE_ACT)
    with_up = (*recipe, RecomputeModule.MLA_UP_PROJ)
    hardware = preset("h100-80gb")
    runs = {m: performance(DEEPSEEK, hardware, DEEPSEEK_TRAINING, deepseek(m)) for m in (recipe, with_up)}
    memory = {
        m: sum(stage_activation_bytes(DEEPSEEK, DEEPSEEK_TRAINING, deepseek(m), 0).values()) for m in runs
    }
    assert memory[with_up] < memory[recipe]
    assert runs[with_up].step_time_s > runs[recipe].step_time_s
    assert runs[with_up].hfu > runs[recipe].hfu and runs[with_up].mfu < runs[recipe].mfu


def test_mla_up_proj_is_searched_on_mla_models_only():
    def modules_searched(model) -> set:
        space = build_space(model, TrainingSpec(seq_len=4096, global_batch_size=1024), 64, Pins(tp=8), 8)
        return {m for _, _, modules, _ in space.recomputes for m in modules}

    assert RecomputeModule.MLA_UP_PROJ in modules_searched(DEEPSEEK)
    assert RecomputeModule.MLA_UP_PROJ not in modules_searched(load_model("qwen3-30b-a3b"))
    assert RecomputeModule.MLA_UP_PROJ not in modules_searched(LLAMA70)


def test_mla_up_proj_pin_reaches_the_megatron_arguments(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            *("--gpus", "1024", "--seq-len", "4096", "--global-batch", "2048", "--tp", "8", "--pp", "1"),
            *(
                "--ep",
                "64",
                "--zero",
                "1",
                "--mbs",
                "1",
                "--recompute-modules",
                "mla_up_proj,moe_act,layernorm",
            ),
            *("--format", "yaml", "-o", str(tmp_path), "deepseek-v3"),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.stdout)
    assert doc["parallelism"]["recompute_modules"] == ["layernorm", "moe_act", "mla_up_proj"]
    args = (tmp_path / "megatron_args.txt").read_text().split()
    at = args.index("--recompute-modules")
    assert args[at : at + 4] == ["--recompute-modules", "layernorm", "moe_act", "mla_up_proj"]
    assert "--qk-layernorm" in args  # the latent norms the up-projections fuse


def test_mla_up_proj_on_a_model_without_mla_is_one_line():
    result = plan_cli("--recompute-modules", "mla_up_proj")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "multi-head latent attention; this model has none" in result.output


def test_a_recompute_method_key_is_refused_with_what_is_planned():
    """Megatron's uniform method with groups of several layers is not planned (README 'Partial
    recompute'); a document or runs file naming a method gets the reason, not 'unknown key'."""
    block = {"tp": 4, "pp": 4, "dp": 4, "recompute": "full", "recompute_method": "uniform"}
    with pytest.raises(PlannerError, match="parallelism.recompute_method: .*recompute_num_layers"):
        config_from_block(block, "parallelism")
