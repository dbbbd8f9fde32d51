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


def norm_params(h: int, bias: bool) -> int:
    """LayerNorm has a scale and a bias (``2h``), RMSNorm a scale only (``h``)."""
    return 2 * h if bias else h


def embedding_params(v: int, h: int) -> int:
    """Token embedding (and an untied LM head): ``v x h``."""
    return v * h


def layer_params_per_tp_rank(
    h: int,
    a: int,
    kv: int,
    d: int,
    f: int,
    *,
    gated: bool,
    qkv_bias: bool,
    out_bias: bool,
    mlp_bias: bool,
    norm_bias: bool,
    num_experts: int,
    t: int,
) -> float:
    """Parameters of one transformer layer held by one tensor-parallel rank (``t = 1``: the layer).

    Megatron-LM's split (Shoeybi et al. 2019, Section 3): Q, K, V and fc1 are column-parallel
    (weights and biases split by ``t``), the output projection and fc2 row-parallel (weights split,
    biases replicated); norms and the MoE router are replicated. Experts are split by ``t`` (expert
    tensor parallelism).
    """
    q, k = a * d, kv * d
    attn_split = 2 * h * (q + k) + ((q + 2 * k) if qkv_bias else 0)
    attn_replicated = h if out_bias else 0
    up_matrices = 2 if gated else 1
    mlp_split = (up_matrices + 1) * h * f + (up_matrices * f if mlp_bias else 0)
    mlp_replicated = h if mlp_bias else 0
    if num_experts:
        mlp_split *= num_experts
        mlp_replicated = mlp_replicated * num_experts + router_params(h, num_experts)
    norms = 2 * norm_params(h, norm_bias)
    return (attn_split + mlp_split) / t + attn_replicated + mlp_replicated + norms


def largest_matrix_params(h: int, q: int, f: int, t: int) -> float:
    """Largest weight matrix of a layer on one TP rank: a Q/O projection (``h x q``) or one MLP
    projection (``h x f``), the granularity at which DeepSpeed ZeRO-3 gathers (per submodule)."""
    return max(h * q, h * f) / t


def padded_vocab(v: int, t: int, divisible_by: int = 128) -> int:
    """Megatron-LM pads the vocabulary to a multiple of ``divisible_by * t``
    (``--make-vocab-size-divisible-by``, default 128; ``_vocab_size_with_padding``)."""
    multiple = divisible_by * t
    return -(-v // multiple) * multiple
