"""Activation memory: the bytes kept for backward, per layer and per pipeline stage.

Derived tensor by tensor from what a transformer layer saves for backward, following Korthikanti et
al. 2022, "Reducing Activation Recomputation in Large Transformer Models" (arXiv:2205.05198),
Section 4 and Table 2. For GPT (LayerNorm, GeLU MLP of ``4h``, multi-head attention, dropout,
16-bit activations, no FlashAttention) the sum is the paper's
``s*b*h*(34 + 5*a*s/h)`` per layer, ``s*b*h*(10 + 24/t + 5*a*s/(h*t))`` with TP, ``s*b*h*34/t``
with TP + SP + selective recompute and ``2*s*b*h`` with full recompute.
Gated MLPs (SwiGLU), GQA, RMSNorm, FlashAttention and the kernels of a given implementation change
the terms; ``tests/fixtures/saved_tensors.json`` (HF layers under ``saved_tensors_hooks``) and
``tests/fixtures/gpu_memory.json`` (H100 training steps) measure them.

Legend: ``s`` sequence length, ``b`` micro-batch size, ``h`` hidden size, ``a`` attention heads,
``q`` = ``a * head_dim``, ``k`` = ``kv_heads * head_dim``, ``f`` MLP intermediate size, ``v``
vocabulary, ``t`` tensor-parallel size, ``e`` bytes of one activation element.
"""

from enum import Enum

from constraints.units import FP32_BYTES, Recompute

MASK_BYTES = 1  # dropout masks are bool on CUDA (torch native_dropout)
LSE_BYTES = 4  # FlashAttention keeps one fp32 log-sum-exp per row and head (Dao et al. 2022)
TOKEN_ID_BYTES = 8  # int64 input ids, kept for the embedding backward (Megatron: 8*s*b)


class Kernels(Enum):
    """Which implementation's kernels decide what a layer saves.

    FUSED: Megatron-LM / Transformer Engine: fused LayerNorm/RMSNorm keeps its 16-bit input, fused
    SwiGLU keeps the ``2f`` fc1 output, fused softmax keeps its 16-bit output, the vocab-parallel
    cross entropy keeps fp32 logits. HF_EAGER: HF Transformers modules: RMSNorm upcasts its input to
    fp32 and keeps it with the 16-bit normalized value, SiLU and the gate product are separate ops,
    eager softmax runs in fp32, the loss keeps 16-bit logits and fp32 log-probabilities.
    """

    FUSED = "fused"
    HF_EAGER = "hf_eager"


def norm_saved_bytes_per_element(kernels: Kernels, e: int) -> int:
    """Bytes one norm keeps per input element (fused: its input; HF: fp32 input + normalized)."""
    return e if kernels is Kernels.FUSED else FP32_BYTES + e


def mlp_saved_bytes_per_f(kernels: Kernels, gated: bool, e: int, fc2_input_bytes: int | None = None) -> int:
    """Bytes the MLP keeps per intermediate element ``s*b*f``, its input excluded.

    Plain: GeLU input and output (fc2 input), ``2e``. Gated, fused: fc1 output (gate and up,
    ``2e``) and the SwiGLU output (``e``). Gated, HF: gate output, SiLU output, up output and
    their product, ``4e``. ``fc2_input_bytes``: FP8 training saves the fc2 input as its FP8 cast.
    """
    fc2_in = e if fc2_input_bytes is None else fc2_input_bytes
    if not gated:
        return e + fc2_in
    return 2 * e + fc2_in if kernels is Kernels.FUSED else 3 * e + fc2_in


def score_saved_bytes_per_element(
    kernels: Kernels, dropout: bool, e: int, mask_bytes: int = MASK_BYTES
) -> int:
    """Bytes kept per attention score ``a*s*s*b`` without FlashAttention: softmax output (``e``;
    HF: fp32 softmax and its 16-bit cast), plus dropout mask and dropout output when dropout."""
    softmax = e if kernels is Kernels.FUSED else FP32_BYTES + e
    return softmax + ((mask_bytes + e) if dropout else 0)


def layer_activation_bytes(
    s: int,
    b: int,
    h: int,
    a: int,
    q: int,
    k: int,
    f: int,
    *,
    gated: bool,
    t: int,
    sequence_parallel: bool,
    flash: bool,
    dropout: bool,
    recompute: Recompute,
    e: int,
    kernels: Kernels,
    mask_bytes: int = MASK_BYTES,
    linear_input_bytes: int | None = None,
) -> float:
    """Bytes one transformer layer keeps for backward for one micro-batch on one TP rank.

    Source: Korthikanti et al. 2022, Section 4.1 and Table 2, generalized term by term (see module
    docstring). Terms outside the TP regions (norm inputs, the inputs of the QKV and fc1
    projections, the two residual dropout masks) are replicated over TP unless sequence
    parallelism splits them; the rest is split by ``t``. ``mask_bytes`` is 1 (bool) on CUDA; PyTorch's
    CPU dropout keeps masks in the activation dtype. Selective recompute drops the attention
    scores (nothing to drop with FlashAttention); full recompute keeps only the layer input.
    ``linear_input_bytes``: FP8 training (Transformer Engine) saves the inputs of the QKV, fc1 and
    fc2 GEMMs as their 1-byte casts; the attention output stays 16-bit (FlashAttention needs it).
    """
    li = e if linear_input_bytes is None else linear_input_bytes
    sbh = s * b * h
    if recompute is Recompute.FULL:
        return e * sbh / (t if sequence_parallel else 1)
    replicated = (
        2 * norm_saved_bytes_per_element(kernels, e) * sbh  # two norms
        + 2 * li * sbh  # inputs of the QKV and fc1 projections
        + (2 * mask_bytes * sbh if dropout else 0)  # residual dropout masks
    )
    kv_width = k if flash else q  # without flash, GQA K/V are repeated to all heads
    attention = e * s * b * (q + 2 * kv_width) + e * s * b * q  # Q, K, V; output = o-proj input
    if flash:
        attention += LSE_BYTES * a * s * b
    elif recompute is Recompute.NONE:
        attention += score_saved_bytes_per_element(kernels, dropout, e, mask_bytes) * a * s * s * b
    mlp = mlp_saved_bytes_per_f(kernels, gated, e, li) * s * b * f
    return replicated / (t if sequence_parallel else 1) + (attention + mlp) / t


def recompute_working_bytes(layer_bytes_without_recompute: float, layer_bytes_stored: float) -> float:
    """Transient memory of recomputation: the backward of one layer first rebuilds what that
    layer did not keep (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost";
    Korthikanti et al. 2022, Section 5). Full recompute rebuilds the whole layer around its stored
    input (the same tensor the first norm keeps, so it is not counted twice); selective rebuilds the
    attention scores. Per stage the total is ``(n - 1) * stored + without_recompute`` for ``n``
    layer-micro-batches in flight, which never exceeds keeping everything."""
    return layer_bytes_without_recompute - layer_bytes_stored


def in_flight_microbatches(pp: int, stage: int, num_microbatches: int) -> int:
    """Micro-batches whose activations stage ``stage`` (0 = first) holds at once under 1F1B:
    ``pp - stage``, at most the number of micro-batches (Narayanan et al. 2021, Section 2.2.1)."""
    return max(1, min(pp - stage, num_microbatches))


def in_flight_layer_microbatches(layers: int, pp: int, vpp: int, stage: int, num_microbatches: int) -> float:
    """Layer-micro-batches whose activations rank ``stage`` holds at once.

    1F1B (``vpp = 1``): ``layers/pp`` layers times ``in_flight_microbatches``. Interleaved 1F1B
    with ``vpp`` model chunks of ``layers/(pp*vpp)`` layers: the warm-up of Megatron-LM's schedule
    (``megatron/core/pipeline_parallel/schedules.py``: ``(pp - rank - 1)*2 + (vpp - 1)*pp``
    micro-batch chunks, plus the one in flight), at most all ``vpp*m`` chunks. On the first stage
    this is ``layers*(1 + (pp - 1)/(pp*vpp))``, the penalty of Korthikanti et al. 2022 Section 4.2.3
    and Megatron's ``theoretical_memory_usage.py``.
    """
    if vpp == 1:
        return layers / pp * in_flight_microbatches(pp, stage, num_microbatches)
    chunks = min((pp - stage - 1) * 2 + (vpp - 1) * pp + 1, vpp * num_microbatches)
    return chunks * layers / (pp * vpp)


def embedding_activation_bytes(
    s: int, b: int, h: int, *, t: int, sequence_parallel: bool, dropout: bool
) -> float:
    """First stage, per micro-batch: int64 token ids and the embedding dropout mask (Megatron-LM
    ``theoretical_memory_usage.py``: ``8*s*b`` and ``s*b*h``)."""
    mask = MASK_BYTES * s * b * h / (t if sequence_parallel else 1) if dropout else 0.0
    return TOKEN_ID_BYTES * s * b + mask


def output_activation_bytes(
    s: int, b: int, h: int, v: int, *, t: int, sequence_parallel: bool, e: int, kernels: Kernels
) -> float:
    """Last stage, one micro-batch: final norm input, LM-head input and the logits kept by the loss.

    Fused (Megatron vocab-parallel cross entropy): fp32 logits split over TP, ``4*s*b*v/t``
    (Korthikanti Table 2 footnote; Megatron ``4*s*b*h*(1 + v/h)``). HF: 16-bit logits returned to
    the caller plus fp32 log-probabilities, ``(e + 4)*s*b*v``.
    """
    hidden = (norm_saved_bytes_per_element(kernels, e) + e) * s * b * h
    hidden /= t if sequence_parallel else 1
    if kernels is Kernels.FUSED:
        return hidden + FP32_BYTES * s * b * v / t
    return hidden + (e + FP32_BYTES) * s * b * v / t


def loss_transient_bytes(s: int, b: int, v: int, *, t: int, kernels: Kernels) -> float:
    """Last stage, one micro-batch: memory the loss allocates and frees during the forward.

    HF's ``ForCausalLMLoss`` upcasts the logits to a new fp32 tensor before ``cross_entropy``
    (``4*s*b*v``; measured on H100: the forward peak exceeds the kept tensors by exactly this,
    ``tests/fixtures/gpu_memory.json``). Megatron's vocab-parallel cross entropy works in place on
    the fp32 logits it keeps: nothing more.
    """
    return 0.0 if kernels is Kernels.FUSED else FP32_BYTES * s * b * v / t


def moe_dispatch_bytes(
    s: int, b: int, h: int, k: int, experts: int, *, t: int, sequence_parallel: bool, e: int
) -> float:
    """Extra bytes an MoE layer keeps per micro-batch beyond a dense MLP with intermediate size
    ``k * f_expert``: the ``k`` routed copies of each token's hidden state that the experts' fc1
    saves (Megatron-Core's all-to-all token dispatcher permutes them; one copy is already counted as
    the MLP input) and the fp32 router probabilities. Sequence parallelism splits both over TP."""
    shard = t if sequence_parallel else 1
    return (e * s * b * h * (k - 1) + FP32_BYTES * s * b * experts) / shard


OFFLOAD_RESIDENT_LAYERS = 2  # the layer computing and the one whose activations are in transit


def resident_layer_microbatches(layer_microbatches: float, offload: bool) -> float:
    """Layer-micro-batches whose activations stay on the GPU: all of them, or with activation
    offloading only the layer computing and the one being copied to or from the host
    (Megatron-Core ``cpu_offloading`` double buffering; DeepSpeed ``cpu_checkpointing``)."""
    return min(layer_microbatches, OFFLOAD_RESIDENT_LAYERS) if offload else layer_microbatches
