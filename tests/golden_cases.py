"""The golden launch cases: example models on a few cluster sizes, some with pinned dimensions.

Shared by ``fixtures/scripts/megatron_args_reference.py`` (which validates them with Megatron-LM)
and the tests (which check that the planner still emits exactly what was validated).
"""

from planner.emit_deepspeed import deepspeed_config
from planner.emit_megatron import megatron_args, megatron_env
from planner.hardware import preset
from planner.io import load_model
from planner.plan import Request, document, run
from planner.space import Pins
from planner.specs import Framework, Precision, Recompute, TrainingSpec, ZeroStage

CASES = [
    {"model": "llama2-13b", "gpus": 64, "seq_len": 4096, "global_batch": 1024},
    {"model": "llama2-7b", "gpus": 8, "seq_len": 4096, "global_batch": 256},
    {"model": "llama2-70b", "gpus": 512, "seq_len": 4096, "global_batch": 1024},
    {"model": "llama3-8b", "gpus": 64, "seq_len": 8192, "global_batch": 512},
    {"model": "llama3-70b", "gpus": 1024, "seq_len": 8192, "global_batch": 512},
    {"model": "llama3.1-405b", "gpus": 16384, "seq_len": 8192, "global_batch": 2048},
    {"model": "llama3.2-1b", "gpus": 8, "seq_len": 8192, "global_batch": 512},
    {"model": "mistral-7b", "gpus": 64, "seq_len": 8192, "global_batch": 512},
    {"model": "qwen2-7b", "gpus": 64, "seq_len": 8192, "global_batch": 512},
    {"model": "gpt3-175b", "gpus": 1024, "seq_len": 2048, "global_batch": 1536},
    {"model": "gpt2-xl", "gpus": 8, "seq_len": 1024, "global_batch": 512},
    {"model": "bloom-176b", "gpus": 384, "seq_len": 2048, "global_batch": 1536},
    {"model": "mpt-7b", "gpus": 8, "seq_len": 2048, "global_batch": 512},
    {"model": "gpt-neox-20b", "gpus": 64, "seq_len": 2048, "global_batch": 1024},
    # a second cluster size for every model Megatron-LM can run
    {"model": "llama2-13b", "gpus": 512, "seq_len": 4096, "global_batch": 2048},
    {"model": "llama2-7b", "gpus": 256, "seq_len": 4096, "global_batch": 1024},
    {"model": "llama2-70b", "gpus": 64, "seq_len": 4096, "global_batch": 512},
    {"model": "llama3-8b", "gpus": 8, "seq_len": 8192, "global_batch": 256},
    {"model": "llama3-70b", "gpus": 128, "seq_len": 8192, "global_batch": 512},
    {"model": "llama3.1-405b", "gpus": 2048, "seq_len": 8192, "global_batch": 1024},
    {"model": "llama3.2-1b", "gpus": 64, "seq_len": 8192, "global_batch": 512},
    {"model": "mistral-7b", "gpus": 16, "seq_len": 8192, "global_batch": 256},
    {"model": "qwen2-7b", "gpus": 512, "seq_len": 8192, "global_batch": 1024},
    {"model": "gpt3-175b", "gpus": 128, "seq_len": 2048, "global_batch": 1536},
    {"model": "gpt2-xl", "gpus": 64, "seq_len": 1024, "global_batch": 512},
    {
        "model": "llama2-13b",
        "gpus": 64,
        "seq_len": 4096,
        "global_batch": 1024,
        "tp": 4,
        "pp": 2,
        "zero": 1,
        "recompute": "selective",
        "mbs": 2,
    },
    {
        "model": "llama2-13b",
        "gpus": 64,
        "seq_len": 4096,
        "global_batch": 1024,
        "tp": 2,
        "pp": 1,
        "zero": 3,
        "recompute": "full",
        "mbs": 1,
    },
    {"model": "llama3-8b", "gpus": 32, "seq_len": 8192, "global_batch": 256, "tp": 2, "zero": 2, "mbs": 1},
    {
        "model": "llama2-7b",
        "gpus": 16,
        "seq_len": 2048,
        "global_batch": 256,
        "tp": 2,
        "zero": 0,
        "recompute": "full",
        "mbs": 4,
        "precision": "fp16",
        "flash": False,
    },
]


def plan_case(case: dict, framework: Framework = Framework.MEGATRON) -> dict:
    """Plan one case and return its Megatron arguments and environment, and its DeepSpeed config."""
    training = TrainingSpec(
        seq_len=case["seq_len"],
        global_batch_size=case["global_batch"],
        precision=Precision(case.get("precision", "bf16")),
        framework=framework,
        flash_attention=case.get("flash", True),
    )
    pins = Pins(
        tp=case.get("tp"),
        pp=case.get("pp"),
        zero_stage=None if case.get("zero") is None else ZeroStage(case["zero"]),
        recompute=None if case.get("recompute") is None else Recompute(case["recompute"]),
        micro_batch_size=case.get("mbs"),
        sequence_parallel=False if framework is Framework.DEEPSPEED else None,
    )
    req = Request(
        model=load_model(case["model"]),
        hardware=preset("h100-80gb"),
        training=training,
        gpus=case["gpus"],
        pins=pins,
    )
    outcome = run(req)
    best = outcome.chosen[0] if outcome.chosen else outcome.closest
    config = outcome.space.config(*best.indices)
    emitted = megatron_args(req.model, training, config)
    deepspeed = deepspeed_config(req.model, training, config)
    return {
        "expressible": emitted.expressible,
        "args": emitted.content,
        "env": megatron_env(config),
        "status": document(req, outcome)["status"],
        "deepspeed": deepspeed,
        "dp": config.dp,
    }
