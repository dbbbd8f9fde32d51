"""DeepSpeed configs that DeepSpeed's own config classes accept (without a GPU or torch.distributed)."""

import json

import pytest
from golden_cases import CASES, plan_case
from hypothesis import given, settings
from test_emit import layouts

from planner.emit_deepspeed import deepspeed_config
from planner.errors import PlannerError
from planner.specs import Framework, ParallelConfig, TrainingSpec, ZeroStage

from conftest import ROOT as FIXTURE_ROOT

# DeepSpeed's own config classes. They need torch and deepspeed (the README's test line installs
# both: torch 2.13 CPU, DS_BUILD_OPS=0 deepspeed).
deepspeed = pytest.importorskip("deepspeed")
from deepspeed.runtime import config as ds_config  # noqa: E402


class DataParallelOnly:
    """The part of Megatron's mpu that DeepSpeedConfig asks: the data-parallel world size."""

    def __init__(self, dp: int) -> None:
        self.dp = dp

    def get_data_parallel_world_size(self) -> int:
        return self.dp


@pytest.fixture(scope="module", autouse=True)
def ds_without_distributed():
    # DeepSpeedConfig asks torch.distributed for the rank first and falls back to world size 1
    # when it is not initialized; a rank of 0 lets it use the mpu's data-parallel size instead.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ds_config.dist, "get_rank", lambda *a, **k: 0)
        yield


class ReadRecorder(dict):
    """A config dict that records which top-level keys DeepSpeed reads."""

    def __init__(self, data: dict) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


def accepted_by_deepspeed(config: dict, dp: int) -> None:
    recorded = ReadRecorder(json.loads(json.dumps(config)))
    parsed = ds_config.DeepSpeedConfig(recorded, mpu=DataParallelOnly(dp))
    # DeepSpeed ignores unknown top-level keys silently: every key we write must have been read.
    assert set(config) <= recorded.read, set(config) - recorded.read
    micro, accum = parsed.train_micro_batch_size_per_gpu, parsed.gradient_accumulation_steps
    assert parsed.train_batch_size == micro * accum * dp
    assert parsed.zero_optimization_stage == config["zero_optimization"]["stage"]


def test_an_unknown_top_level_key_is_caught():
    with pytest.raises(AssertionError, match="bogus"):
        accepted_by_deepspeed(
            {
                "train_batch_size": 8,
                "train_micro_batch_size_per_gpu": 1,
                "gradient_accumulation_steps": 1,
                "zero_optimization": {"stage": 0},
                "bogus": 1,
            },
            8,
        )


@settings(max_examples=60, deadline=None)
@given(layouts())
def test_deepspeed_accepts_every_expressible_config(layout):
    model, training, config = layout
    emitted = deepspeed_config(model, training, config)
    if emitted.expressible:
        accepted_by_deepspeed(emitted.content, config.dp)
    else:
        assert emitted.notes


def test_deepspeed_rejects_a_wrong_data_parallel_size():
    from planner.io import load_model

    training = TrainingSpec(seq_len=4096, global_batch_size=1024)
    config = ParallelConfig(tp=1, pp=1, dp=64, zero_stage=ZeroStage.GRADIENTS, micro_batch_size=2)
    emitted = deepspeed_config(load_model("llama2-13b"), training, config)
    accepted_by_deepspeed(emitted.content, 64)
    with pytest.raises(AssertionError, match="train_batch_size"):
        accepted_by_deepspeed(emitted.content, 32)


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"{c['model']}-{c['gpus']}-{c.get('tp')}-{c.get('zero')}"
)
def test_golden_cases_planned_for_deepspeed_are_accepted(case):
    """Every example model on its golden cluster sizes, planned with --framework deepspeed."""
    megatron_only = case.get("cp", 1) > 1 or case.get("vpp", 1) > 1 or case.get("ep", 1) > 1
    megatron_only |= bool(case.get("activation_offload")) and case.get("recompute") != "full"
    megatron_only |= bool(case.get("recompute_layers") or case.get("recompute_modules"))  # partial
    megatron_only |= bool(case.get("first_stage_layers"))  # DeepSpeed partitions its own way
    if megatron_only or (case["pp"] > 1 and case["zero"] >= 2):
        with pytest.raises(PlannerError, match="--framework megatron"):
            plan_case(case, Framework.DEEPSPEED)
        return
    plan = plan_case(case, Framework.DEEPSPEED)
    emitted = plan["deepspeed"]
    if emitted.expressible:
        accepted_by_deepspeed(emitted.content, plan["dp"])
    else:
        reasons = ("pipeline", "selective", "Transformer Engine", "checkpoints")
        assert emitted.notes and any(r in n for n in emitted.notes for r in reasons)


EXAMPLE_MODELS = sorted(p.stem for p in (FIXTURE_ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("gpus", [16, 256])
@pytest.mark.parametrize("name", EXAMPLE_MODELS)
def test_every_example_planned_for_deepspeed_is_accepted(name, gpus):
    """Each bundled model, searched with --framework deepspeed on two cluster sizes."""
    from planner.hardware import preset
    from planner.io import load_model
    from planner.plan import Request, run
    from planner.space import Pins

    training = TrainingSpec(seq_len=2048, global_batch_size=1024, framework=Framework.DEEPSPEED)
    req = Request(
        model=load_model(name),
        hardware=preset("h100-80gb"),
        training=training,
        gpus=gpus,
        pins=Pins(sequence_parallel=False),
    )
    outcome = run(req)
    best = (outcome.chosen or [outcome.closest])[0]
    config = outcome.space.config(*best.indices)
    emitted = deepspeed_config(req.model, training, config)
    assert emitted.expressible, emitted.notes
    accepted_by_deepspeed(emitted.content, config.dp)


def test_the_scheduler_section_builds_deepspeeds_own_scheduler():
    """DeepSpeed's WarmupCosineLR, built from the section: linear warm-up to the peak, cosine to
    the Megatron launch's minimum learning rate at the last step."""
    import torch
    from deepspeed.runtime import lr_schedules

    from planner.emit import DEFAULT_LR, DEFAULT_MIN_LR, DEFAULT_TRAIN_ITERS, DEFAULT_WARMUP_ITERS
    from planner.emit_deepspeed import scheduler

    section = scheduler()
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=DEFAULT_LR)
    schedule = getattr(lr_schedules, section["type"])(optimizer, **section["params"])
    rates = []
    for _ in range(DEFAULT_TRAIN_ITERS):
        rates.append(schedule.get_lr()[0])
        schedule.step()
    assert rates[DEFAULT_WARMUP_ITERS // 2] == pytest.approx(DEFAULT_LR / 2, rel=0.02)
    assert max(rates) == pytest.approx(DEFAULT_LR, rel=1e-4)
    assert rates[-1] == pytest.approx(DEFAULT_MIN_LR, rel=0.01)
