"""A user's measured training steps, the input of ``plan calibrate``.

A runs file is a YAML list; each run names its model (bundled name or file), GPU (preset or
hardware file; paths relative to the runs file), GPU count, the plan document's ``parallelism``
keys, sequence length, global batch, precision, and what was measured: ``step_time_s`` or
``tokens_per_s``. Every key is checked; errors name the file, the run and the key.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from planner.errors import PlannerError
from planner.io import load_hardware, load_model
from planner.layout import GRAD_ACCUM_KEY, config_from_block
from planner.specs import (
    MEGATRON_BF16_PRECISIONS,
    Framework,
    HardwareSpec,
    ModelSpec,
    ParallelConfig,
    Precision,
    TrainingSpec,
)

RUN_KEYS = ("name", "model", "gpu", "gpus", "parallelism", "seq_len", "global_batch", "precision",
            "framework", "flash_attention", "grad_reduce_in_bf16", "step_time_s", "tokens_per_s")  # fmt: skip
REQUIRED_KEYS = ("model", "gpus", "parallelism", "seq_len", "global_batch")


@dataclass(frozen=True, slots=True, kw_only=True)
class MeasuredRun:
    """One training step the user measured on their cluster."""

    name: str
    """Label in the report (``name`` in the file, else ``run N``)."""
    model: ModelSpec
    """What was trained."""
    hardware: HardwareSpec
    """The GPU it ran on."""
    training: TrainingSpec
    """Sequence, batch, precision, framework."""
    config: ParallelConfig
    """The layout it ran with."""
    step_time_s: float
    """Measured seconds per optimizer step."""


def _where(source: str, index: int, run: Mapping[str, Any]) -> str:
    name = run.get("name") if isinstance(run.get("name"), str) else None
    return f"{source}: runs[{index}]" + (f" ({name})" if name else "")


def _positive_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise PlannerError(f"{where} must be a positive integer, got {value!r}")
    return value


def _positive_number(value: Any, where: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf
    if not ok:
        raise PlannerError(f"{where} must be a positive finite number, got {value!r}")
    return float(value)


def _choice(kind: type[Enum], value: Any, where: str) -> Any:
    allowed = [member.value for member in kind]
    if value not in allowed:
        raise PlannerError(f"{where} must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return kind(value)


def _file_or_name(value: Any, base_dir: Path, where: str) -> str:
    """A path relative to the runs file when such a file exists, else the name as given."""
    if not isinstance(value, str) or not value:
        raise PlannerError(f"{where} must be a name or a file path, got {value!r}")
    beside = base_dir / value
    return str(beside) if beside.exists() else value


def _named(load: Any, value: str, where: str) -> Any:
    """``load(value)`` with its error prefixed by the run and key it came from."""
    try:
        return load(value)
    except PlannerError as exc:
        raise PlannerError(f"{where}: {str(exc).removeprefix('--gpu: ')}") from None


def parallel_config(data: Any, gpus: int, where: str) -> ParallelConfig:
    """The run's layout (``planner.layout.config_from_block``), on exactly its GPUs."""
    config = config_from_block(data, where)
    if config.num_gpus != gpus:
        raise PlannerError(
            f"{where}: tp*cp*pp*dp = {config.num_gpus}, not the run's gpus {gpus}; "
            "give the layout the run used"
        )
    return config


def measured_run(run: Any, index: int, source: str, base_dir: Path, default_gpu: str | None) -> MeasuredRun:
    """One validated run."""
    if not isinstance(run, Mapping):
        raise PlannerError(f"{source}: runs[{index}] must be a mapping of {', '.join(RUN_KEYS)}")
    where = _where(source, index, run)
    unknown = sorted(map(str, set(run) - set(RUN_KEYS)))
    if unknown:
        raise PlannerError(f"{where}: unknown key(s) {', '.join(unknown)}; use {', '.join(RUN_KEYS)}")
    for key in REQUIRED_KEYS:
        if key not in run:
            raise PlannerError(f"{where}: missing key '{key}'")
    gpu = run.get("gpu", default_gpu)
    if gpu is None:
        raise PlannerError(f"{where}: missing key 'gpu' (or pass --gpu for every run)")
    model = _named(load_model, _file_or_name(run["model"], base_dir, f"{where}.model"), f"{where}.model")
    hardware = _named(load_hardware, _file_or_name(gpu, base_dir, f"{where}.gpu"), f"{where}.gpu")
    gpus = _positive_int(run["gpus"], f"{where}.gpus")
    config = parallel_config(run["parallelism"], gpus, f"{where}.parallelism")
    precision = _choice(Precision, run.get("precision", Precision.BF16.value), f"{where}.precision")
    bf16_grads = _boolean(run.get("grad_reduce_in_bf16", False), f"{where}.grad_reduce_in_bf16")
    if bf16_grads and precision not in MEGATRON_BF16_PRECISIONS:
        raise PlannerError(f"{where}.grad_reduce_in_bf16 needs precision bf16 or fp8, got {precision.value}")
    training = TrainingSpec(
        seq_len=_positive_int(run["seq_len"], f"{where}.seq_len"),
        global_batch_size=_positive_int(run["global_batch"], f"{where}.global_batch"),
        precision=precision,
        framework=_choice(Framework, run.get("framework", Framework.MEGATRON.value), f"{where}.framework"),
        flash_attention=_boolean(run.get("flash_attention", True), f"{where}.flash_attention"),
        grad_reduce_in_bf16=bf16_grads,
    )
    per_step = config.dp * config.micro_batch_size
    if training.global_batch_size % per_step:
        raise PlannerError(
            f"{where}: global_batch {training.global_batch_size} is not a multiple of "
            f"dp*micro_batch_size = {per_step}"
        )
    accum = run["parallelism"].get(GRAD_ACCUM_KEY)
    if accum is not None and accum != training.global_batch_size // per_step:
        raise PlannerError(
            f"{where}.parallelism.{GRAD_ACCUM_KEY} is {accum!r}, but global_batch / "
            f"(dp*micro_batch_size) = {training.global_batch_size // per_step}"
        )
    return MeasuredRun(
        name=str(run.get("name", f"run {index}")),
        model=model,
        hardware=hardware,
        training=training,
        config=config,
        step_time_s=_step_time(run, training, where),
    )


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise PlannerError(f"{where} must be true or false, got {value!r}")
    return value


def _step_time(run: Mapping[str, Any], training: TrainingSpec, where: str) -> float:
    """Seconds per step: measured directly, or from tokens per second over the whole cluster."""
    given = [key for key in ("step_time_s", "tokens_per_s") if key in run]
    if len(given) != 1:
        raise PlannerError(f"{where}: give exactly one of step_time_s or tokens_per_s (the measurement)")
    value = _positive_number(run[given[0]], f"{where}.{given[0]}")
    if given[0] == "step_time_s":
        return value
    return training.global_batch_size * training.seq_len / value


def runs_from_list(data: Any, source: str, base_dir: Path, default_gpu: str | None) -> list[MeasuredRun]:
    """Every run of a runs file, validated; at least one."""
    if not isinstance(data, list) or not data:
        raise PlannerError(
            f"{source}: a runs file is a non-empty YAML list of runs, each with {', '.join(REQUIRED_KEYS)}, "
            "gpu and step_time_s or tokens_per_s (see examples/calibration/runs.yaml)"
        )
    return [measured_run(run, index, source, base_dir, default_gpu) for index, run in enumerate(data)]
