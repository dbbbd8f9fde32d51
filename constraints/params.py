"""Parameter counts of transformer components, as HF Transformers instantiates them.

Each function counts one module's weights and biases. ``tests/constraints/test_params.py`` checks
the sums against ``tests/fixtures/reference/param_counts.json`` (Transformers on the meta device).
Legend: ``h`` hidden size, ``a`` attention heads, ``kv`` key/value heads (GQA), ``d`` head dim,
``f`` MLP intermediate size, ``v`` vocabulary, ``e`` experts.
"""

GATED_MLP_MATRICES = 3  # SwiGLU: gate, up, down (Shazeer 2020, "GLU Variants Improve Transformer")
PLAIN_MLP_MATRICES = 2  # up, down (Vaswani et al. 2017)


def attention_params(h: int, a: int, kv: int, d: int, qkv_bias: bool, out_bias: bool) -> int:
    """Q, K, V and output projections of one attention block.

    Q and O are ``h x (a*d)``, K and V ``h x (kv*d)`` (grouped-query attention, Ainslie et al.
    2023); biases of size ``a*d`` / ``kv*d`` on Q, K, V when ``qkv_bias`` and ``h`` on O when
    ``out_bias``.
    """
    q, k = a * d, kv * d
    weights = 2 * h * q + 2 * h * k
    biases = (q + 2 * k if qkv_bias else 0) + (h if out_bias else 0)
    return weights + biases


def mlp_params(h: int, f: int, gated: bool, bias: bool) -> int:
    """Feed-forward block: ``3*h*f`` gated (SwiGLU), ``2*h*f`` plain; biases ``f`` per up/gate
    projection and ``h`` on the down projection."""
    if gated:
        return GATED_MLP_MATRICES * h * f + ((2 * f + h) if bias else 0)
    return PLAIN_MLP_MATRICES * h * f + ((f + h) if bias else 0)


def router_params(h: int, e: int) -> int:
    """MoE router (Mixtral ``block_sparse_moe.gate``): a bias-free ``h x e`` linear layer."""
    return h * e


def moe_mlp_params(h: int, f: int, e: int, gated: bool, bias: bool) -> int:
    """Mixture-of-experts block: the router plus ``e`` experts of intermediate size ``f``
    (Jiang et al. 2024, Mixtral of Experts)."""
    return router_params(h, e) + e * mlp_params(h, f, gated, bias)


def qk_norm_params(d: int) -> int:
    """Per-head RMSNorm of queries and of keys (Qwen3 ``q_norm``, ``k_norm``): ``d`` weights each."""
    return 2 * d


def mla_params(h: int, a: int, q_lora: int, kv_lora: int, nope: int, rope: int, v: int) -> int:
    """Multi-head latent attention (DeepSeek-AI 2024, DeepSeek-V2, Section 2.1; HF
    ``DeepseekV3Attention``): query down (``h x q_lora``) with its RMSNorm and up-projection
    (``q_lora x a*(nope + rope)``, or ``h x a*(nope + rope)`` without a query rank), the joint
    key/value down-projection with the shared rotary key (``h x (kv_lora + rope)``) and its RMSNorm,
    the key/value up-projection (``kv_lora x a*(nope + v)``) and the output (``a*v x h``)."""
    q = h * q_lora + q_lora + q_lora * a * (nope + rope) if q_lora else h * a * (nope + rope)
    kv = h * (kv_lora + rope) + kv_lora + kv_lora * a * (nope + v)
    return q + kv + a * v * h


def mla_up_projection_params(h: int, a: int, q_lora: int, kv_lora: int, nope: int, rope: int, v: int) -> int:
    """The per-head up-projections of multi-head latent attention, what Megatron-LM's
    ``--recompute-modules mla_up_proj`` reruns (``MLASelfAttention.qkv_up_proj_and_rope_apply`` at
    d98e8a64: ``linear_q_up_proj``, ``q_lora x a*(nope + rope)``, or ``linear_q_proj``, ``h x
    a*(nope + rope)`` without a query rank; ``linear_kv_up_proj``, ``kv_lora x a*(nope + v)``);
    the terms of ``mla_params`` split over tensor parallelism, the output projection excepted."""
    return (q_lora or h) * a * (nope + rope) + kv_lora * a * (nope + v)


def shared_expert_params(h: int, f: int, gated: bool, gate: bool) -> int:
    """Shared expert(s) every token goes through (one MLP of intermediate ``f``), and the sigmoid
    gate on its output in Qwen2-MoE (``h x 1``)."""
    return (mlp_params(h, f, gated, False) if f else 0) + (h if gate else 0)


def norm_params(h: int, bias: bool) -> int:
    """LayerNorm has a scale and a bias (``2h``), RMSNorm a scale only (``h``)."""
    return 2 * h if bias else h


def embedding_params(v: int, h: int) -> int:
    """Token embedding (and an untied LM head): ``v x h``."""
    return v * h


def attention_params_per_tp_rank(
    h: int, a: int, kv: int, d: int, *, qkv_bias: bool, out_bias: bool, qk_norm: bool, t: int
) -> float:
    """Attention parameters on one tensor-parallel rank (Megatron-LM's split, Shoeybi et al. 2019,
    Section 3): Q, K, V column-parallel (weights and biases split by ``t``), the output projection
    row-parallel (weight split, bias replicated); per-head q/k norms replicated."""
    q, k = a * d, kv * d
    split = 2 * h * (q + k) + ((q + 2 * k) if qkv_bias else 0)
    return split / t + (h if out_bias else 0) + (qk_norm_params(d) if qk_norm else 0)


def mla_params_per_tp_rank(
    h: int, a: int, q_lora: int, kv_lora: int, nope: int, rope: int, v: int, t: int
) -> float:
    """Multi-head latent attention on one TP rank: the down-projections and their norms are
    replicated, the per-head up-projections and the output split by ``t`` (Megatron-LM
    ``MLASelfAttention``)."""
    down = (h * q_lora + q_lora if q_lora else 0) + h * (kv_lora + rope) + kv_lora
    return down + (mla_params(h, a, q_lora, kv_lora, nope, rope, v) - down) / t


def mlp_params_per_tp_rank(h: int, f: int, *, gated: bool, bias: bool, t: int) -> float:
    """A dense MLP on one TP rank: fc1 (gate and up) column-parallel, fc2 row-parallel (its bias
    replicated)."""
    return (mlp_params(h, f, gated, bias) - (h if bias else 0)) / t + (h if bias else 0)


def routed_expert_params_per_rank(
    h: int, f: int, e: int, *, gated: bool, bias: bool, ep: int, etp: int
) -> float:
    """Routed experts on one rank: ``e/ep`` experts (expert parallelism, Lepikhin et al. 2021,
    GShard), each split over ``etp`` expert-tensor-parallel ranks (Megatron-Core's default: etp = tp)."""
    return e / ep * mlp_params(h, f, gated, bias) / etp


def largest_matrix_params(h: int, q: int, f: int, t: int) -> float:
    """Largest weight matrix of a layer on one TP rank: a Q/O projection (``h x q``) or one MLP
    projection (``h x f``), the granularity at which DeepSpeed ZeRO-3 gathers (per submodule)."""
    return max(h * q, h * f) / t


def padded_vocab(v: int, t: int, divisible_by: int = 128) -> int:
    """Megatron-LM pads the vocabulary to a multiple of ``divisible_by * t``
    (``--make-vocab-size-divisible-by``, default 128; ``_vocab_size_with_padding``)."""
    multiple = divisible_by * t
    return -(-v // multiple) * multiple
