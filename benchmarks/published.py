"""Read ``../shared/calibration/published.yaml`` into the planner's specs, by generic field rules.

Rules (never per entry): a missing recompute is inferred as the least recompute under which the
planner says the published configuration fits (the run happened), else ``full``; such rows are
marked and their fit verdict is not counted as evidence; a missing ZeRO stage is 1
(ZeRO-1, or Megatron's distributed optimizer, the recipes' default) unless the distributed
optimizer is stated off; ZeRO 2/3 rows follow DeepSpeed/FSDP conventions
(16-bit gradients), others Megatron's; FlashAttention is on for rows on Hopper and later GPUs and
rows whose notes name it; GeLU models carry Megatron's default dropout 0.1. Rows whose layout or
MoE shape is not stated are reported as skipped.

What the NVIDIA recipes (NeMo, Megatron-Bridge, DGX Cloud) set without the table stating it:
- an unstated sequence parallelism is on when ``tp > 1``: the recipes turn it on with tensor
  parallelism (NeMo ``nemo/collections/llm/recipes/llama3_70b.py``, ``trainer``:
  ``sequence_parallelism=True``); every row that does not use those recipes states it;
- FP8 rows (``fp8``, ``FP8-CS`` current scaling, ``FP8-MX`` MXFP8 blocks) keep their weights in FP8
  and gather them as FP8 (Megatron-Bridge ``src/megatron/bridge/training/mixed_precision.py``:
  every FP8 recipe but the sub-channel one sets ``fp8_param_gather = True``; NeMo 2's
  ``bf16_with_fp8_mixed`` sets ``fp8_params = True``). Both FP8 scalings run the same FP8 GEMMs.
- expert tensor parallelism and the token dispatcher are read from ``parallel.etp`` /
  ``parallel.dispatcher`` where a row has them, else from its notes (``ETP=1``, ``ETP4``;
  ``Dispatcher DeepEP`` or HybridEP: the flex dispatcher, ``Dispatcher A2A``: all-to-all), else the
  planner's defaults (whole experts, all-to-all); notes naming the "1f1b overlap" (or A2A
  overlap) run Megatron's ``--overlap-moe-expert-parallel-comm``;
- a row whose stated dimensions (layers, hidden size, heads, vocabulary, experts and top-k, and
  the KV heads and FFN width where stated) are those of exactly one bundled model
  (``examples/*.yaml``, HF Transformers' own configs) takes that model's whole architecture: what the
  table's columns cannot say (DeepSeek-V3's latent attention and dense first layers, Qwen3's
  128-wide heads on a 4096-wide model and its QK norms, biases, tied embeddings); the training-run
  settings stay the rows' (dropout above);
- a row whose layers do not split evenly over its pipeline (and virtual) stages holds them as
  Megatron-LM's uneven split does: the middle stages the same, the first and last lighter by the
  fewest layers the planner searches (``planner.rules.pipeline_splits``; Llama 3.1 405B on pp 16:
  7, 8 x 14, 7), the two ends as even as they can be, the first the heavier on a tie; a row with
  no such split, or one Megatron cannot build with its vpp (``megatron_split_form``), is skipped as
  not representable;
- the network between nodes is the row's cluster's where its source states it: a per-node figure
  in its notes (``1600 Gbps node-node interconnect``, MosaicML's: 200 Gb/s per GPU, a DGX A100's),
  or a cluster named in ``CLUSTER_NETWORK_GBPS`` (BLOOM's Jean Zay: four 100 Gb/s Omni-Path links
  per node of 8 GPUs, a quarter of a DGX A100's); else the preset's (one NIC per GPU, as on the
  DGX clusters of the other sources);
- rows whose notes name Megatron-DeepSpeed and that pipeline (pp > 1) ran DeepSpeed's pipeline
  engine, which reduces the gradients after the batch's last micro-batch
  (``deepspeed/runtime/pipe/schedule.py``, ``TrainSchedule.steps``: ``ReduceTiedGrads``,
  ``ReduceGrads``, ``OptimizerStep`` at the last step): no gradient reduction or parameter gather
  overlaps compute (``overlap_grad_reduce`` and ``overlap_param_gather`` off);
- rows run by NVIDIA's NeMo or Megatron-Bridge performance recipes (sources named in
  ``BF16_GRADIENT_SOURCES``) keep and reduce their gradients in bf16 (Megatron's
  ``--grad-reduce-in-bf16``, ``TrainingSpec.grad_reduce_in_bf16``): the NeMo 2 and Megatron-Bridge
  performance scripts set ``grad_reduce_in_fp32 = False`` for every pretraining run, the DGX Cloud
  v24.11 NeMo configurations ``grad_sync_dtype: bf16``; the other sources keep Megatron's fp32
  main gradients (DeepSpeed and FSDP rows have 16-bit gradients either way);
- ``selective (norm, act)`` recompute lists Megatron-Core's ``--recompute-modules`` in the
  Megatron-Bridge table's words: ``norm`` is ``layernorm``, ``act`` ``moe_act``, ``shared_expert``
  ``shared_experts`` (the table's own note: "norm, act" = layernorm + moe_act); a bare ``selective``
  is Megatron's default module, ``core_attn``; ``full`` every layer.
- an unstated recompute on a row whose throughput counts recomputed FLOPs (``tflops_basis:
  hardware``: SC21's and BLOOM's) is full recompute of every layer: the source's own FLOP formula
  counts each layer's forward twice (Narayanan et al. 2021, Eq. 3, the "4x" of BLOOM's TFLOPs),
  and the step time derived from that rate assumes it; inferring less would contradict the
  throughput the row is read from;
- any other unstated recompute is inferred among the choices the planner searches
  (``planner.space.recompute_choices``: none, Megatron's default selective module ``core_attn``,
  the searched module sets, full recompute of every layer or of the first N layers of each model
  chunk): the one with the fewest recomputed FLOPs under which the configuration fits (the first
  rule above), what a recipe tuned for throughput sets; where the row gives its peak memory, only
  choices that need no more than that reading (reserve excluded: BLOOM's nvidia-smi readings rule
  out the partial choices for most of its rows, whose notes say the final run checkpointed every
  layer), so the memory comparison stays a test of the memory model.
"""

import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from constraints.pipeline import megatron_split_form
from planner.evaluate import largest_chunk_layers, memory
from planner.hardware import preset
from planner.io import bundled_models, load_model
from planner.known_accuracy import GENERATION_OF_PRESET
from planner.layout import parse_modules
from planner.performance import model_recomputed_share, step_flops_per_token
from planner.rules import pipeline_splits
from planner.space import Pins, recompute_choices
from planner.specs import (
    Dispatcher,
    Framework,
    HardwareSpec,
    ModelSpec,
    NormType,
    ParallelConfig,
    PositionEncoding,
    Precision,
    Recompute,
    TrainingSpec,
    ZeroStage,
)

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "shared" / "calibration" / "published.yaml"
GPUS = {
    "A100-80GB-SXM": "a100-80gb",
    "A100-40GB-SXM": "a100-40gb",
    "H100-80GB-SXM": "h100-80gb",
    "B200-SXM": "b200",
    "GB200": "gb200",
    "GB300": "gb300",
}
CLUSTER_NETWORK_GBPS = {
    "jean zay": 4 * 100 / 8,  # four Omni-Path 100 Gb/s links per node of 8 A100 80GB
}
"""Network per GPU (Gb/s, one direction) of clusters a source names without stating it, by the name
in its title or notes: Jean Zay's A100 partition, where BLOOM and its prequel sweep ran (Le Scao et
al. 2022, "BLOOM", arXiv:2211.05100, Section 3.4.1 Hardware: "4 Omni-Path 100 Gbps links per node,
arranged in an enhanced hypercube 8D global topology")."""
BF16_GRADIENT_SOURCES = {
    ("megatron-bridge performance summary", ""): "Megatron-Bridge v0.2.x scripts/performance/configs/"
    "*/*_llm_pretrain.py: cfg.ddp.grad_reduce_in_fp32 = False (every pretraining config)",
    ("dgx cloud benchmarking performance recipes v25.05", ""): "NeMo 25.04 scripts/performance/"
    "helpers.py, set_primary_perf_configs: recipe.trainer.plugins.grad_reduce_in_fp32 = False (bf16 "
    "and fp8)",
    ("dgx cloud benchmarking performance recipes v24.11", "nemo"): "NVIDIA/dgxc-benchmarking @ 35a9aecc "
    "grok1/grok1_314b.yaml, optim: mcore_distributed_optim, grad_sync_dtype: bf16 (NeMo's "
    "DistributedDataParallelConfig grad_reduce_in_fp32 = grad_sync_dtype is fp32); the collection's "
    "Nemotron-4 configurations set the same (nemotron/nemotron4-*-synth.yaml)",
}
"""Sources (a lower-case part of their title, and a word their rows' notes must hold: the v24.11
collection's NeMo rows, not its MaxText ones) whose runs reduce bf16 gradients, with the line of
their configurations that says so. The other sources keep Megatron's fp32 default."""
STATED_NETWORK = re.compile(r"(\d+)\s*Gbps node-node interconnect", re.IGNORECASE)
"""A row's notes stating its network per node (MosaicML's tables: ``1600 Gbps node-node interconnect``)."""
BITS_PER_BYTE = 8
GENERATIONS = {preset: generation.upper() for preset, generation in GENERATION_OF_PRESET.items()}
"""GPU generation of each preset the rows use (``planner.known_accuracy``'s, which the plan's
accuracy warning reads back by the same names)."""


@dataclass(frozen=True)
class Row:
    """One usable published run."""

    id: str
    model: ModelSpec
    hardware: HardwareSpec
    training: TrainingSpec
    config: ParallelConfig
    vpp: int
    measured_step_s: float | None
    """Published step time, or derived from published throughput; None if only memory was given."""
    oom: bool
    peak_mem_gb: float | None
    recompute_inferred: bool = False
    """The source does not state recompute; it was inferred (see module docstring)."""
    family: str = ""
    """Source family: the id's first word (``megatron``, ``mpt``, ``bloom``, ``dgxc2411``, ...)."""
    generation: str = ""
    """GPU generation (``A100``, ``H100``, ``B200``, ``GB200``, ``GB300``)."""


def skip_reason(entry: dict) -> str | None:
    m = entry["model"]
    if m.get("moe") and not m["moe"].get("experts"):
        return "MoE shape not stated"
    if any(entry["parallel"].get(k) is None for k in ("tp", "pp", "mbs", "gbs")):
        return "layout not stated"
    if entry["gpu"] not in GPUS:
        return f"gpu {entry['gpu']}"
    return None


def model_of(m: dict) -> ModelSpec:
    """The row's model: a bundled model's architecture where one matches (with the row's name, the
    training run's dropout, and room for its sequence length), else built from the columns."""
    gelu = m["activation"] == "gelu"
    bundled = bundled_architecture(m)
    if bundled:
        return replace(
            bundled,
            name=m["name"],
            dropout=0.1 if gelu else 0.0,
            max_position_embeddings=max(bundled.max_position_embeddings, m["seq_len"]),
        )
    moe = m.get("moe") or {}
    return ModelSpec(
        name=m["name"],
        family="gpt2" if gelu else "llama",
        num_layers=m["layers"],
        hidden_size=m["hidden"],
        num_heads=m["heads"],
        num_kv_heads=m.get("kv_heads") or m["heads"],
        head_dim=m["hidden"] // m["heads"],
        ffn_hidden_size=m["ffn_hidden"],
        vocab_size=m["vocab"],
        max_position_embeddings=m["seq_len"],
        gated_mlp=m["activation"] == "swiglu",
        qkv_bias=gelu,
        out_bias=gelu,
        mlp_bias=gelu,
        norm=NormType.LAYERNORM if gelu else NormType.RMSNORM,
        norm_bias=gelu,
        positions=PositionEncoding.LEARNED if gelu else PositionEncoding.ROTARY,
        tied_embeddings=gelu,
        dropout=0.1 if gelu else 0.0,
        num_experts=moe.get("experts") or 0,
        num_experts_per_token=moe.get("top_k") or 0,
        moe_ffn_hidden_size=moe.get("moe_ffn_hidden") or 0,
        shared_expert_ffn_hidden_size=(moe.get("shared_experts") or 0) * (moe.get("moe_ffn_hidden") or 0),
    )


BUNDLED_MATCH = {
    "layers": "num_layers",
    "hidden": "hidden_size",
    "heads": "num_heads",
    "kv_heads": "num_kv_heads",
    "ffn_hidden": "ffn_hidden_size",
    "vocab": "vocab_size",
    "moe.experts": "num_experts",
    "moe.top_k": "num_experts_per_token",
}
"""Row column -> ModelSpec field that must agree for a row to take a bundled model's architecture."""
_BUNDLED: list[ModelSpec] = []


def _column(m: dict, key: str) -> object:
    if key.startswith("moe."):
        return (m.get("moe") or {}).get(key[4:]) or 0
    return m.get(key)


def bundled_architecture(m: dict) -> ModelSpec | None:
    """The one bundled model whose dimensions agree with every column the row states (layers,
    hidden size and heads stated at least), or None (see the module docstring)."""
    if any(m.get(key) is None for key in ("layers", "hidden", "heads")):
        return None
    if not _BUNDLED:
        _BUNDLED.extend(load_model(name) for name in sorted(bundled_models()))
    matches = [
        b
        for b in _BUNDLED
        if all(
            _column(m, key) is None or _column(m, key) == getattr(b, field)
            for key, field in BUNDLED_MATCH.items()
        )
    ]
    return matches[0] if len(matches) == 1 else None


def stage_split(model: ModelSpec, pp: int, vpp: int) -> tuple[int, int]:
    """(first, last) stage layers of a published layout: ``(0, 0)`` for the even split, else the
    uneven split with the least trimmed ends (see the module docstring)."""
    splits = pipeline_splits(model, pp, vpp)
    if (0, 0) in splits:
        return 0, 0
    built = [s for s in splits if megatron_split_form(model.num_layers, pp, vpp, *s) is not None]
    if not built:
        raise ValueError(f"{model.num_layers} layers do not split over pp {pp} with vpp {vpp}")
    return max(built, key=lambda s: (s[0] + s[1], -abs(s[0] - s[1]), s[0]))


def cluster_hardware(hardware: HardwareSpec, entry: dict) -> HardwareSpec:
    """``hardware`` with the network of the row's cluster where its source states it (see the
    module docstring), else as the preset has it."""
    text = f"{(entry.get('source') or {}).get('title', '')} {entry.get('notes') or ''}"
    stated = STATED_NETWORK.search(text)
    if stated:
        per_gpu_gbps = float(stated.group(1)) / hardware.gpus_per_node
    else:
        named = [gbps for name, gbps in CLUSTER_NETWORK_GBPS.items() if name in text.lower()]
        if not named:
            return hardware
        per_gpu_gbps = named[0]
    return replace(hardware, inter_node_bandwidth_bytes_per_s=per_gpu_gbps / BITS_PER_BYTE * 1e9)


def bf16_gradients(entry: dict) -> bool:
    """Whether a row's source ran with bf16 gradients (``BF16_GRADIENT_SOURCES``)."""
    title = str(entry.get("source", {}).get("title", "")).lower()
    notes = str(entry.get("notes") or "").lower()
    return any(name in title and word in notes for name, word in BF16_GRADIENT_SOURCES)


def precision_of(entry: dict) -> Precision:
    """``fp8``, ``FP8-CS``, ``FP8-MX`` are FP8 training; ``fp16`` FP16; anything else (``bf16``,
    ``BF16``, ``amp_bf16``, annotated variants) bf16."""
    text = str(entry.get("precision")).lower()
    if text.startswith("fp8"):
        return Precision.FP8
    return Precision.FP16 if text.startswith("fp16") else Precision.BF16


def expert_layout(entry: dict) -> tuple[int, Dispatcher]:
    """(expert TP size, token dispatcher) of a row: its ``parallel.etp`` / ``parallel.dispatcher``
    fields, else what its notes state (``ETP=1``, ``ETP4``; ``Dispatcher DeepEP`` or HybridEP: the
    flex dispatcher; ``A2A``/alltoall), else the planner's defaults (1, all-to-all)."""
    p, notes = entry["parallel"], str(entry.get("notes") or "")
    etp = p.get("etp")
    if etp is None:
        stated = re.search(r"\bETP\s*=?\s*(\d+)", notes)
        etp = int(stated.group(1)) if stated else 1
    dispatcher = p.get("dispatcher")
    if dispatcher is None:
        named = re.search(r"\bdispatcher\s+(\w+)", notes, re.IGNORECASE)
        dispatcher = named.group(1) if named else ""
    flex = str(dispatcher).lower() in ("deepep", "hybridep", "flex")
    return etp, Dispatcher.FLEX if flex else Dispatcher.ALLTOALL


def row_of(entry: dict) -> Row:
    p, meas, derived = entry["parallel"], entry["measured"], entry.get("derived") or {}
    model = model_of(entry["model"])
    hardware = cluster_hardware(preset(GPUS[entry["gpu"]]), entry)
    gpus, tp, pp, cp = entry["gpus"], p["tp"], p["pp"], p.get("cp") or 1
    dp = p.get("dp") or derived.get("dp") or gpus // (tp * cp * pp)
    zero = p.get("zero_stage")
    if zero is None:  # unstated: ZeRO-1 / the distributed optimizer, unless stated off
        zero = 0 if p.get("distributed_optimizer") is False else 1
    zero = ZeroStage(zero)
    flash = not entry["gpu"].startswith("A100") or "flashattention" in str(entry.get("notes", "")).lower()
    precision = precision_of(entry)
    notes = str(entry.get("notes") or "")
    ep_overlap = re.search(r"1f1b overlap|a2a overlap", notes, re.IGNORECASE) is not None
    deepspeed_pipeline = "megatron-deepspeed" in notes.lower() and pp > 1
    training = TrainingSpec(
        seq_len=entry["model"]["seq_len"],
        global_batch_size=p["gbs"],
        precision=precision,
        fp8_param_gather=precision is Precision.FP8 and zero == ZeroStage.OPTIMIZER,
        framework=Framework.DEEPSPEED
        if zero >= ZeroStage.GRADIENTS
        or (zero == ZeroStage.OPTIMIZER and p.get("distributed_optimizer") is False)
        else Framework.MEGATRON,
        flash_attention=flash,
        overlap_moe_expert_parallel_comm=ep_overlap,
        grad_reduce_in_bf16=bf16_gradients(entry) and zero < ZeroStage.GRADIENTS,
        overlap_grad_reduce=not deepspeed_pipeline,
        overlap_param_gather=not deepspeed_pipeline,
    )
    etp, dispatcher = expert_layout(entry)
    first, last = stage_split(model, pp, p.get("vpp") or 1)
    config = ParallelConfig(
        first_stage_layers=first,
        last_stage_layers=last,
        tp=tp,
        pp=pp,
        dp=dp,
        cp=cp,
        vpp=p.get("vpp") or 1,
        ep=p.get("ep") or 1,
        etp=etp,
        dispatcher=dispatcher,
        zero_stage=zero,
        recompute=Recompute.FULL,
        micro_batch_size=p["mbs"],
        sequence_parallel=p.get("sequence_parallel") is not False and tp > 1,
    )
    inferred = p.get("recompute") is None
    if not inferred:
        config = replace(config, **stated_recompute(str(p["recompute"])))
    elif meas.get("tflops_basis") != "hardware":  # a hardware basis recomputes every layer: full, as set
        config = inferred_recompute(model, hardware, training, config, meas.get("peak_mem_gb"))
    return Row(
        id=entry["id"],
        family=entry["id"].split("-")[0],
        generation=GENERATIONS.get(GPUS[entry["gpu"]], entry["gpu"]),
        model=model,
        hardware=hardware,
        training=training,
        config=config,
        recompute_inferred=inferred,
        vpp=p.get("vpp") or 1,
        measured_step_s=measured_step_s(entry, model, training, config),
        oom=bool(meas.get("oom")),
        peak_mem_gb=meas.get("peak_mem_gb"),
    )


def inferred_recompute(
    model: ModelSpec,
    hardware: HardwareSpec,
    training: TrainingSpec,
    config: ParallelConfig,
    peak_mem_gb: float | None = None,
) -> ParallelConfig:
    """``config`` with the least recompute, in recomputed FLOPs, under which it fits and, when
    ``peak_mem_gb`` is given, needs no more than the run held, among the planner's searched choices
    (every block-method layer count of its largest chunk); full recompute of every layer when none
    does."""
    chunk = largest_chunk_layers(model, config)
    fitting = []
    for order, (mode, layers, modules) in enumerate(recompute_choices(model, Pins(), list(range(1, chunk)))):
        trial = replace(config, recompute=mode, recompute_num_layers=layers, recompute_modules=modules)
        mem = memory(model, hardware, training, trial)
        if mem.fits:
            share = model_recomputed_share(model, trial)
            flops = step_flops_per_token(model, training.seq_len, mode, share, modules).hardware
            if peak_mem_gb and mem.total - mem.reserve > peak_mem_gb * 1e9:
                continue  # the run held less than this choice needs
            fitting.append((flops, order, trial))
    if not fitting:
        return replace(config, recompute=Recompute.FULL, recompute_num_layers=0, recompute_modules=())
    return min(fitting, key=lambda f: f[:2])[2]


MODULE_WORDS = {"norm": "layernorm", "act": "moe_act", "shared_expert": "shared_experts"}
"""The Megatron-Bridge performance table's names of ``--recompute-modules`` choices."""


def stated_recompute(text: str) -> dict:
    """``full``, ``none``, ``selective`` or ``selective (norm, act, ...)`` as layout fields."""
    mode, _, listed = text.partition("(")
    recompute = Recompute(mode.strip())
    words = [w.strip() for w in listed.rstrip(")").split(",") if w.strip()]
    modules = parse_modules([MODULE_WORDS.get(w, w) for w in words], f"recompute {text!r}")
    return {"recompute": recompute, "recompute_modules": modules}


def measured_step_s(
    entry: dict, model: ModelSpec, training: TrainingSpec, config: ParallelConfig
) -> float | None:
    """The published step time, or one derived from published throughput with our FLOP count."""
    meas, derived = entry["measured"], entry.get("derived") or {}
    tokens = training.global_batch_size * training.seq_len
    gpus = entry["gpus"]
    if meas.get("iter_time_s"):
        return meas["iter_time_s"]
    tps = meas.get("tokens_per_s_per_gpu") or derived.get("tokens_per_s_per_gpu")
    if tps:
        return tokens / (tps * gpus)
    flops = step_flops_per_token(
        model,
        training.seq_len,
        config.recompute,
        model_recomputed_share(model, config),
        config.recompute_modules,
    )
    if meas.get("tflops_per_gpu"):
        per_token = flops.hardware if meas.get("tflops_basis") == "hardware" else flops.model
        return per_token * tokens / (meas["tflops_per_gpu"] * 1e12 * gpus)
    return None


def load_or_exit(path: Path) -> tuple[list[Row], dict[str, str]]:
    """``load``, or one line ``Error: ...`` and exit code 2 when the file is absent (a fresh clone
    without ``../shared``)."""
    if not path.is_file():
        print(
            f"Error: --published: no calibration data at {path}; pass "
            "--published PATH/TO/published.yaml (the shared calibration data)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return load(path)


def load(path: Path = DEFAULT_PATH) -> tuple[list[Row], dict[str, str]]:
    """Usable rows, and the skipped ones with their reason."""
    entries = yaml.safe_load(path.read_text())
    rows, skipped = [], {}
    for entry in entries:
        reason = skip_reason(entry)
        if reason:
            skipped[entry["id"]] = reason
            continue
        try:
            rows.append(row_of(entry))
        except Exception as exc:  # a row the specs reject (e.g. heads not dividing) is reported
            skipped[entry["id"]] = f"not representable: {exc}"
    return rows, skipped
