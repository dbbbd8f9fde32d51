"""Serving memory per GPU: weights in a storage format, KV cache, prefill workspace, reserve; and
the questions around it (largest batch, longest context, smallest tp).

The most-loaded GPU is the heavier of the first pipeline stage (token embedding) and the last (LM
head and the logits). Decoder linear layers are stored in the weight format; embeddings, LM head,
norms and biases stay 16-bit, as GPTQ/AWQ checkpoints and vLLM keep them.
"""

from dataclasses import dataclass, replace
from typing import Any

from constraints import params as P
from constraints import serving as S
from constraints.memory import reserve_bytes
from constraints.units import BYTES_PER_GIB
from planner.errors import PlannerError
from planner.evaluate import edge_stages
from planner.rules import divisors
from planner.specs import HardwareSpec, ModelSpec, PositionEncoding

HALF_BYTES = 2
DEFAULT_PREFILL_CHUNK = 8192  # tokens per prefill step (chunked prefill, vLLM's default budget)
MAX_SEARCH = 1 << 24  # bound for the batch and context searches


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeSpec:
    """One serving configuration."""

    weights: S.NumberFormat = S.NumberFormat.BF16
    """Storage format of the decoder's linear layers."""
    kv_cache: S.NumberFormat = S.NumberFormat.BF16
    """Storage format of cached keys and values."""
    prompt_tokens: int = 2048
    """Prompt length ``s``."""
    generate_tokens: int = 512
    """Generated tokens ``n``."""
    batch: int = 1
    """Concurrent sequences ``b``."""
    tp: int = 1
    """Tensor-parallel size."""
    pp: int = 1
    """Pipeline-parallel size."""
    reserve_fraction: float = 0.10
    """Share of device memory kept free (vLLM's default ``gpu_memory_utilization`` is 0.9)."""
    reserve_fixed_bytes: float = 0.0
    """Fixed reserve added to the fraction."""
    prefill_chunk: int = DEFAULT_PREFILL_CHUNK
    """Tokens prefilled per step."""

    @property
    def context(self) -> int:
        """Prompt plus generated tokens, ``s + n``."""
        return self.prompt_tokens + self.generate_tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeMemory:
    """Memory of the most-loaded serving GPU, bytes."""

    weights: float
    kv_cache: float
    workspace: float
    reserve: float
    capacity: float
    stage: int

    @property
    def total(self) -> float:
        return self.weights + self.kv_cache + self.workspace + self.reserve

    @property
    def fits(self) -> bool:
        return self.total <= self.capacity


def valid_serving_tp(model: ModelSpec) -> list[int]:
    """TP sizes that split the query heads, the KV heads split or replicated evenly."""
    kv = model.num_kv_heads
    return [t for t in divisors(model.num_heads) if kv % t == 0 or t % kv == 0]


def check(model: ModelSpec, spec: ServeSpec) -> None:
    """One-line errors for layouts the model cannot take."""
    if spec.tp not in valid_serving_tp(model):
        raise PlannerError(
            f"--tp {spec.tp} does not split the {model.num_heads} heads evenly; "
            f"use one of {valid_serving_tp(model)}"
        )
    if model.num_layers % spec.pp:
        raise PlannerError(
            f"--pp {spec.pp} does not divide the {model.num_layers} layers; "
            f"use one of {divisors(model.num_layers)}"
        )
    for name in ("prompt_tokens", "batch", "prefill_chunk"):
        if getattr(spec, name) <= 0:
            raise PlannerError(f"{name.replace('_', ' ')} must be positive, got {getattr(spec, name)}")
    if spec.generate_tokens < 0:
        raise PlannerError(f"generated tokens must be zero or more, got {spec.generate_tokens}")


def _layer_weight_bytes(model: ModelSpec, spec: ServeSpec) -> float:
    h, t, d = model.hidden_size, spec.tp, model.head_dim
    kv_dim = S.kv_heads_per_rank(model.num_kv_heads, t) * d
    linear = 2 * h * model.q_dim / t + 2 * h * kv_dim  # Q, O split; K, V split or replicated
    mlp = (3 if model.gated_mlp else 2) * h * model.ffn_hidden_size / t
    if model.is_moe:
        mlp *= model.num_experts
    small = 2 * P.norm_params(h, model.norm_bias) + (
        P.router_params(h, model.num_experts) if model.is_moe else 0
    )
    small += (model.q_dim / t + 2 * kv_dim if model.qkv_bias else 0) + (h if model.out_bias else 0)
    return (linear + mlp) * S.quantized_weight_bytes_per_param(spec.weights) + small * HALF_BYTES


def serve_memory(model: ModelSpec, hardware: HardwareSpec, spec: ServeSpec) -> ServeMemory:
    """Memory of the most-loaded GPU serving ``spec``."""
    h, t = model.hidden_size, spec.tp
    layers = model.num_layers / spec.pp
    embedding = P.embedding_params(model.vocab_size, h) / t * HALF_BYTES
    kv = layers * S.kv_cache_bytes(
        spec.batch,
        S.cached_tokens(spec.context, model.sliding_window),
        S.kv_heads_per_rank(model.num_kv_heads, t),
        model.head_dim,
        1,
        spec.kv_cache.bytes,
    )
    workspace = S.prefill_workspace_bytes(
        min(spec.prompt_tokens * spec.batch, spec.prefill_chunk),
        h,
        model.q_dim,
        model.kv_dim,
        model.ffn_hidden_size,
        model.gated_mlp,
        t,
        HALF_BYTES,
    )
    reserve = reserve_bytes(hardware.memory_bytes, spec.reserve_fraction, spec.reserve_fixed_bytes)
    stages = []
    for stage in sorted(set(edge_stages(spec.pp))):
        weights = layers * _layer_weight_bytes(model, spec)
        extra = 0.0
        if stage == 0:
            weights += embedding
            if model.positions is PositionEncoding.LEARNED:
                weights += P.embedding_params(model.max_position_embeddings, h) * HALF_BYTES
        if stage == spec.pp - 1:
            weights += P.norm_params(h, model.norm_bias) * HALF_BYTES
            if not model.tied_embeddings or spec.pp > 1:
                weights += embedding
            extra = S.logits_bytes(spec.batch, model.vocab_size, t)
        stages.append(
            ServeMemory(
                weights=weights,
                kv_cache=kv,
                workspace=workspace + extra,
                reserve=reserve,
                capacity=hardware.memory_bytes,
                stage=stage,
            )
        )
    return max(stages, key=lambda m: m.total)


def _largest(fits, low: int) -> int:
    """Largest integer ``x >= low`` with ``fits(x)``, for a monotone ``fits``; ``low - 1`` if none."""
    if not fits(low):
        return low - 1
    high = low
    while high < MAX_SEARCH and fits(high * 2):
        high *= 2
    top = min(high * 2, MAX_SEARCH)
    while high < top - 1:
        mid = (high + top) // 2
        high, top = (mid, top) if fits(mid) else (high, mid)
    return high


def max_batch(model: ModelSpec, hardware: HardwareSpec, spec: ServeSpec) -> int:
    """Most concurrent sequences of this context that fit (0: not even one)."""
    return _largest(lambda b: serve_memory(model, hardware, replace(spec, batch=b)).fits, 1)


def max_context(model: ModelSpec, hardware: HardwareSpec, spec: ServeSpec) -> int:
    """Longest prompt + generation that fits at this batch (generation share kept)."""
    share = spec.generate_tokens / spec.context

    def fits(tokens: int) -> bool:
        generate = round(tokens * share)
        layout = replace(spec, prompt_tokens=max(tokens - generate, 1), generate_tokens=generate)
        return serve_memory(model, hardware, layout).fits

    return _largest(fits, 1)


def node_tps(model: ModelSpec, hardware: HardwareSpec) -> list[int]:
    """Serving tp sizes within one NVLink domain (a node, or an NVL72 rack): tp's all-reduces stay
    on NVLink (every layer runs two, on the critical path of each generated token, so tp over the
    network is not searched)."""
    return [t for t in valid_serving_tp(model) if t <= hardware.nvlink_domain_gpus]


def min_tp(model: ModelSpec, hardware: HardwareSpec, spec: ServeSpec) -> int | None:
    """Smallest tp within an NVLink domain (pp as given) at which this batch and context fit, or None."""
    for t in node_tps(model, hardware):
        if serve_memory(model, hardware, replace(spec, tp=t)).fits:
            return t
    return None


def min_pp(model: ModelSpec, hardware: HardwareSpec, spec: ServeSpec) -> tuple[int, int] | None:
    """(tp, pp) of the fewest GPUs that serve this batch and context with tp within NVLink, the
    layers split over pp stages (pp dividing the layers); ties go to the smaller pp. None if even
    one layer per stage does not fit."""
    found = [
        (t * p, p, t)
        for t in node_tps(model, hardware)
        for p in divisors(model.num_layers)
        if serve_memory(model, hardware, replace(spec, tp=t, pp=p)).fits
    ]
    if not found:
        return None
    _, p, t = min(found)
    return t, p


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeLayout:
    """The tp and pp to report, and why."""

    tp: int
    pp: int
    notes: tuple[str, ...] = ()


def choose_layout(
    model: ModelSpec, hardware: HardwareSpec, spec: ServeSpec, tp: int | None, pp: int | None
) -> ServeLayout:
    """The user's tp and pp, or the fewest GPUs that fit: the smallest tp within NVLink, then
    pipeline stages. tp never leaves the NVLink domain unless the user pins it, and then a note
    says so."""
    node = hardware.nvlink_domain_gpus
    notes = []
    if tp is not None and tp > node:
        notes.append(
            f"tp {tp} spans {-(-tp // node)} NVLink domains of {node} GPUs: every layer's all-reduce "
            "crosses the network; pipeline stages (--pp) split the layers over nodes instead"
        )
    if tp is None:
        base = replace(spec, pp=pp or 1)
        found = min_tp(model, hardware, base)
        if found is None and pp is None and (split := min_pp(model, hardware, base)) is not None:
            tp, pp = split
            notes.append(f"no tp within an NVLink domain of {node} GPUs fits; tp {tp} with pp {pp} does")
        elif found is None:
            tp = max(node_tps(model, hardware))
            notes.append(
                f"no tp within an NVLink domain of {node} GPUs fits at pp {pp or 1}; showing tp {tp}"
            )
        else:
            tp = found
    return ServeLayout(tp=tp, pp=pp or 1, notes=tuple(notes))


def serve_document(
    model: ModelSpec, hardware: HardwareSpec, spec: ServeSpec, notes: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The serving answer as a document (``plan serve``'s output; README "Serving")."""
    check(model, spec)
    mem = serve_memory(model, hardware, spec)
    gib = {
        k: round(getattr(mem, k) / BYTES_PER_GIB, 3)
        for k in ("weights", "kv_cache", "workspace", "reserve", "total", "capacity")
    }
    kv_per_token = mem.kv_cache / (
        spec.batch * max(1, min(spec.context, model.sliding_window or spec.context))
    )
    split = min_pp(model, hardware, spec)
    return {
        "status": "fits" if mem.fits else "does_not_fit",
        "model": {
            "name": model.name,
            "layers": model.num_layers,
            "kv_heads": model.num_kv_heads,
            "head_dim": model.head_dim,
        },
        "gpu": {
            "name": hardware.name,
            "mem_gib": round(hardware.memory_gib, 3),
            "gpus_per_node": hardware.gpus_per_node,
            "nvlink_domain_gpus": hardware.nvlink_domain_gpus,
        },
        "serving": {
            "weights": spec.weights.value,
            "kv_cache": spec.kv_cache.value,
            "tp": spec.tp,
            "pp": spec.pp,
            "batch": spec.batch,
            "prompt_tokens": spec.prompt_tokens,
            "generate_tokens": spec.generate_tokens,
            "context": spec.context,
            "sliding_window": model.sliding_window,
        },
        "memory_gib": gib | {"most_loaded_stage": mem.stage},
        "kv_cache_bytes_per_token_per_gpu": round(kv_per_token, 1),
        "max_batch_at_this_context": max_batch(model, hardware, spec),
        "max_context_at_this_batch": max_context(model, hardware, spec),
        "min_tp": min_tp(model, hardware, spec),
        "min_pp": None if split is None else {"tp": split[0], "pp": split[1], "gpus": split[0] * split[1]},
        "notes": list(notes),
    }
