"""torchtitan launch: every emitted argument list is parsed by torchtitan 0.3.0's own
``ConfigManager`` (tyro rejects a key torchtitan does not read, and the config classes'
``__post_init__`` validation runs), and the parsed config is checked with torchtitan's own mesh,
FSDP, pipeline and batch code against the planned layout. The named-config table is checked against
torchtitan's config functions. These tests skip only when torchtitan is not installed (the README's
test line installs it)."""

import importlib
import os
import subprocess

import pytest
import test_launch_scripts as launch_scripts
from click.testing import CliRunner
from golden_cases import CASES, TORCHTITAN_CASES, plan_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.cli import main
from planner.emit_torchtitan import run_args, run_values, torchtitan_args
from planner.io import load_model
from planner.specs import ParallelConfig, Precision, Recompute, TrainingSpec, ZeroStage
from planner.torchtitan_configs import NAMED_CONFIGS, configs_for

# The stub torchrun, srun and scontrol of the other launch scripts' tests (a fixture).
stubs = launch_scripts.stubs
after, run_script, write_files = launch_scripts.after, launch_scripts.run_script, launch_scripts.write_files
FLOAT8_SKIP = "torchtitan's float8 configs load only on an SM89+ GPU with torchao (torchao checks the device)"
NEEDS_TORCHTITAN = (
    "torchtitan not installed (pip install torchtitan==0.3.0 triton==3.9.0; the README's test line does)"
)


@pytest.fixture(scope="module")
def titan():
    """torchtitan's config manager and the parts of its runtime that validate a layout."""
    pytest.importorskip("torchtitan.config", reason=NEEDS_TORCHTITAN)
    from torchtitan.config import ConfigManager

    return ConfigManager


def float8_loadable() -> bool:
    """torchao checks the device when a float8 config is built: SM89 or newer, with torchao."""
    import torch

    if importlib.util.find_spec("torchao") is None or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability() >= (8, 9)


def parse(config_manager, args: list[str]):
    """torchtitan's parse; tyro exits (after printing why) on an unknown key or a failed check."""
    try:
        return config_manager().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"torchtitan's ConfigManager rejected the arguments (exit {exc.code}): {args}")


def check_layout(cfg, model, training: TrainingSpec, config: ParallelConfig) -> None:
    """The parsed config runs the planned layout, by torchtitan's own code."""
    from torchtitan.distributed import ParallelDims
    from torchtitan.distributed.activation_checkpoint import FullAC, SelectiveAC
    from torchtitan.distributed.fsdp import get_fsdp_reshard_after_forward_policy
    from torchtitan.distributed.pipeline_parallel import (
        _generate_llm_fqn_per_model_part,
        _get_pipeline_metadata,
    )

    dims = ParallelDims.from_config(cfg.parallelism, world_size=config.num_gpus)  # asserts the product
    assert (dims.tp, dims.cp, dims.pp, dims.ep) == (config.tp, config.cp, config.pp, config.ep)
    assert dims.dp_replicate * dims.dp_shard == config.dp
    if config.zero_stage >= ZeroStage.GRADIENTS:
        assert dims.dp_shard == config.dp
        resharded = get_fsdp_reshard_after_forward_policy(
            cfg.parallelism.fsdp_reshard_after_forward, dims.pp_enabled
        )
        assert resharded == (config.zero_stage is ZeroStage.WEIGHTS)
    else:
        assert dims.dp_shard == 1
    # ParallelismConfig.expert_parallel_degree: dp_shard * cp * tp == efsdp * ep
    assert (dims.dp_shard * dims.cp * dims.tp) % dims.ep == 0
    assert cfg.parallelism.enable_sequence_parallel == config.sequence_parallel
    # Trainer.__init__: gradient accumulation and pipeline micro-batches
    batch_degree = dims.dp_replicate * dims.dp_shard
    local = cfg.training.local_batch_size
    assert cfg.training.global_batch_size == training.global_batch_size
    assert cfg.training.global_batch_size % (local * batch_degree) == 0
    accumulation = cfg.training.global_batch_size // (local * batch_degree)
    micro_size = cfg.parallelism.pipeline_parallel_microbatch_size if dims.pp_enabled else local
    assert micro_size == config.micro_batch_size
    assert accumulation * (local // micro_size) == training.global_batch_size // (
        config.dp * config.micro_batch_size
    )
    assert cfg.training.seq_len == training.seq_len
    divisor = (dims.tp if cfg.parallelism.enable_sequence_parallel else 1) * (
        2 * dims.cp if dims.cp > 1 else 1
    )
    assert cfg.training.seq_len % divisor == 0
    if dims.pp_enabled:
        stages, layers, first, last = _get_pipeline_metadata(dims, cfg.parallelism, cfg.model_spec.model)
        assert stages == config.pp * config.vpp
        parts = _generate_llm_fqn_per_model_part(stages, layers, first, last)
        assert [sum(m.startswith("layers.") for m in part) for part in parts] == [
            model.num_layers // stages
        ] * stages
    expected = {
        Recompute.NONE: type(None),
        Recompute.SELECTIVE: SelectiveAC.Config,
        Recompute.FULL: FullAC.Config,
    }
    assert type(cfg.activation_checkpoint) is expected[config.recompute]
    assert cfg.training.mixed_precision_param == (
        "float32" if training.precision is Precision.FP32 else "bfloat16"
    )


def float8_config(emitted) -> bool:
    return next(c for c in NAMED_CONFIGS if c.config == emitted.content[3]).float8


def check_emitted(titan, model, training: TrainingSpec, config: ParallelConfig) -> None:
    emitted = torchtitan_args(model, training, config)
    if not emitted.expressible:
        assert emitted.notes and emitted.content is None
        return
    if float8_config(emitted) and not float8_loadable():
        pytest.skip(FLOAT8_SKIP)
    chosen = next(c for c in configs_for(model) if c.config == emitted.content[3])
    args = emitted.content[:-1] + run_args(run_values(chosen)) + emitted.content[-1:]
    check_layout(parse(titan, args), model, training, config)


@pytest.mark.parametrize(
    "case", CASES + TORCHTITAN_CASES, ids=lambda c: f"{c['model']}-{c['gpus']}-z{c['zero']}"
)
def test_golden_case_launch_passes_torchtitans_config_manager(titan, case, tmp_path, stubs):
    """torchtitan.sh and torchtitan.sbatch start (stub torchrun, srun, scontrol) with arguments
    torchtitan's ConfigManager accepts for the planned layout; refused plans get no file."""
    plan = plan_case(case)
    emitted, files = plan["torchtitan"], write_files(case, tmp_path)
    if not emitted.expressible:
        assert emitted.notes and not {"torchtitan.sh", "torchtitan.sbatch"} & set(files)
        return
    if float8_config(emitted) and not float8_loadable():
        pytest.skip(FLOAT8_SKIP)
    [torchrun] = run_script(files["torchtitan.sh"], stubs, MASTER_ADDR="10.0.0.1")
    argv = after(torchrun, "torchtitan.train")
    chosen = next(c for c in configs_for(plan["model"]) if c.config == emitted.content[3])
    assert argv == emitted.content[:-1] + run_args(run_values(chosen)) + emitted.content[-1:]
    assert torchrun[torchrun.index("--nnodes") + 1] == str(-(-case["gpus"] // 8))
    check_layout(parse(titan, argv), plan["model"], plan["training"], plan["config"])
    slurm_env = {"SLURM_JOB_NODELIST": "node-[a-b]", "SLURM_SUBMIT_DIR": str(tmp_path)}
    srun, torchrun = run_script(files["torchtitan.sbatch"], stubs, **slurm_env)
    assert srun[0] == "srun" and torchrun[torchrun.index("--master-addr") + 1] == "node-a"
    assert after(torchrun, "torchtitan.train") == argv


def test_golden_cases_include_runnable_and_refused_plans():
    expressible = [plan_case(c)["torchtitan"].expressible for c in CASES + TORCHTITAN_CASES]
    assert sum(expressible) >= 8 and not all(expressible)


TITAN_MODELS = ["llama3-8b", "llama3-70b", "qwen3-30b-a3b", "deepseek-v3"]


@st.composite
def titan_layouts(draw):
    """A layout torchtitan may run for one of its flavors: ZeRO-0/2/3, tp, cp, pp with vpp, ep."""
    model = load_model(draw(st.sampled_from(TITAN_MODELS)))
    tp = draw(st.sampled_from([t for t in (1, 2, 4, 8) if model.num_heads % t == 0]))
    cp = draw(st.sampled_from([1, 2, 4]))
    pp = draw(st.sampled_from([p for p in (1, 2, 4) if model.num_layers % p == 0]))
    vpp = (
        1 if pp == 1 else draw(st.sampled_from([v for v in (1, 2, 4, 5) if model.num_layers % (pp * v) == 0]))
    )
    dp = draw(st.sampled_from([1, 2, 4, 8]))
    zero = draw(
        st.sampled_from([ZeroStage.GRADIENTS, ZeroStage.WEIGHTS] + ([ZeroStage.NONE] if cp == 1 else []))
    )
    shard = dp if zero >= ZeroStage.GRADIENTS else 1
    ep = 1
    if model.is_moe:
        ep = draw(
            st.sampled_from(
                [e for e in (1, 2, 4, 8) if (shard * cp * tp) % e == 0 and model.num_experts % e == 0]
            )
        )
    mbs = draw(st.sampled_from([1, 2]))
    accum = pp * draw(st.integers(1, 4)) if pp > 1 else draw(st.integers(1, 4))
    config = ParallelConfig(
        tp=tp,
        pp=pp,
        dp=dp,
        cp=cp,
        vpp=vpp,
        ep=ep,
        zero_stage=zero,
        recompute=draw(st.sampled_from(list(Recompute))),
        micro_batch_size=mbs,
        sequence_parallel=tp > 1 and draw(st.booleans()),
    )
    training = TrainingSpec(
        seq_len=draw(st.sampled_from([4096, 8192])),
        global_batch_size=dp * mbs * accum,
        precision=draw(st.sampled_from([Precision.BF16, Precision.FP32])),
    )
    return model, training, config


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(titan_layouts())
def test_random_layouts_pass_torchtitans_config_manager(titan, layout):
    model, training, config = layout
    assert torchtitan_args(model, training, config).expressible
    check_emitted(titan, model, training, config)


@pytest.mark.parametrize("named", NAMED_CONFIGS, ids=lambda c: c.config)
def test_named_configs_match_torchtitan(titan, named):
    """Each row of the table is what torchtitan's config function builds."""
    if named.float8 and not float8_loadable():
        pytest.skip(FLOAT8_SKIP)
    registry = importlib.import_module(f"torchtitan.models.{named.module}.config_registry")
    cfg = getattr(registry, named.config)()
    model = cfg.model_spec.model
    first, last = model.layers[0], model.layers[-1]
    attention = last.attention
    kv_heads = getattr(attention, "n_kv_heads", None)
    moe = last.moe
    assert cfg.model_spec.flavor == named.flavor
    assert cfg.hf_assets_path == named.hf_assets_path
    assert (len(model.layers), model.dim, attention.n_heads, kv_heads) == (
        named.num_layers,
        named.hidden_size,
        named.num_heads,
        named.num_kv_heads,
    )
    dense = first.feed_forward.w1.out_features if first.feed_forward is not None else None
    assert (dense, model.vocab_size, bool(model.enable_weight_tying)) == (
        named.ffn_hidden_size,
        named.vocab_size,
        named.tied_embeddings,
    )
    if named.num_experts:
        experts = (moe.num_experts, moe.router.top_k, moe.routed_experts.inner_experts.hidden_dim)
        assert experts == (named.num_experts, named.num_experts_per_token, named.expert_ffn_hidden_size)
    else:
        assert moe is None
    assert ("Float8" in type(attention.wo).__qualname__) == named.float8
    # what the notes say the flavor trains (RoPE base and scaling, Qwen3's q/k norms, no MTP)
    rope = attention.rope
    expected_rope = {"llama3": (500000, "llama"), "qwen3": (1000000, "none"), "deepseek_v3": (10000, "yarn")}
    assert (rope.theta, rope.scaling) == expected_rope[named.module]
    if named.module == "qwen3":
        assert attention.qk_norm is not None
    if named.module == "deepseek_v3":
        assert model.mtp_layers == []


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("llama3-8b", "llama3_8b"),
        ("llama3-70b", "llama3_70b"),
        ("llama3.1-405b", "llama3_405b"),
        ("qwen3-30b-a3b", "qwen3_30b_a3b"),
        ("deepseek-v3", "deepseek_v3_671b"),
    ],
)
def test_bundled_models_map_to_torchtitans_flavors(name, config):
    assert config in [c.config for c in configs_for(load_model(name))]


def test_refusals_say_why():
    llama2 = load_model("llama2-13b")
    llama3 = load_model("llama3-8b")
    bf16 = TrainingSpec(seq_len=4096, global_batch_size=64)
    zero3 = ParallelConfig(tp=1, pp=1, dp=8, zero_stage=ZeroStage.WEIGHTS)

    def reasons(model, training, config) -> str:
        emitted = torchtitan_args(model, training, config)
        assert not emitted.expressible and emitted.content is None
        return " ".join(emitted.notes)

    assert "no torchtitan 0.3.0 named config" in reasons(llama2, bf16, zero3)
    assert "ZeRO-1" in reasons(llama3, bf16, ParallelConfig(tp=1, pp=1, dp=8, zero_stage=ZeroStage.OPTIMIZER))
    fp8 = TrainingSpec(seq_len=4096, global_batch_size=64, precision=Precision.FP8)
    assert "no float8 variant" in reasons(llama3, fp8, zero3)
    assert "--precision fp8" in reasons(load_model("llama3.1-405b"), bf16, zero3)
    fp16 = TrainingSpec(seq_len=4096, global_batch_size=64, precision=Precision.FP16)
    assert "not fp16" in reasons(llama3, fp16, zero3)
    offload = ParallelConfig(tp=1, pp=1, dp=8, zero_stage=ZeroStage.WEIGHTS, activation_offload=True)
    assert "activation offload" in reasons(llama3, bf16, offload)
    assert "no model module for gpt2" in reasons(load_model("gpt2-xl"), bf16, zero3)


def test_script_variables_and_extra_overrides_reach_torchtitan(titan, tmp_path, stubs):
    out = tmp_path / "plan"
    pins = "--tp 2 --pp 4 --cp 2 --vpp 5 --zero 2 --recompute full --mbs 1".split()
    args = [
        "--gpus",
        "128",
        "--seq-len",
        "8192",
        "--global-batch",
        "512",
        *pins,
        "-o",
        str(out),
        "llama3-70b",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    bin_dir, record = stubs
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "RECORD": str(record), "NNODES": "1"}
    env |= {"DUMP_FOLDER": "/scratch/run 1", "CHECKPOINT": "", "HF_ASSETS_PATH": "/assets/it's"}
    extra = ["--training.steps", "20"]
    subprocess.run(["bash", str(out / "torchtitan.sh"), *extra], env=env, check=True, timeout=60)
    [call] = [p.read_text().split("\0")[:-1] for p in record.iterdir()]
    argv = after(call, "torchtitan.train")
    assert argv[-1] == "activation_checkpoint:full" and argv[-3:-1] == extra
    cfg = parse(titan, argv)
    assert cfg.dump_folder == "/scratch/run 1" and cfg.hf_assets_path == "/assets/it's"
    assert cfg.training.steps == 20 and not cfg.checkpoint.enable
    model, training = load_model("llama3-70b"), TrainingSpec(seq_len=8192, global_batch_size=512)
    config = ParallelConfig(
        tp=2,
        pp=4,
        dp=8,
        cp=2,
        vpp=5,
        zero_stage=ZeroStage.GRADIENTS,
        recompute=Recompute.FULL,
        sequence_parallel=True,
    )
    check_layout(cfg, model, training, config)


def test_refused_plan_writes_no_script_and_says_why(tmp_path):
    out = tmp_path / "plan"
    result = CliRunner().invoke(main, ["--gpus", "64", "--zero", "1", "-o", str(out), "llama2-13b"])
    assert result.exit_code == 0, result.output
    assert not (out / "torchtitan.sh").exists()
    import yaml

    block = yaml.safe_load((out / "plan.yaml").read_text())["launch"]["torchtitan"]
    assert block["expressible"] is False and block["files"] == []
    assert any("named config" in n for n in block["notes"])
