"""Hypothesis strategies: small random models, layouts and training runs."""

from dataclasses import replace

from hypothesis import strategies as st

from planner.specs import Framework, ModelSpec, NormType, PositionEncoding, Precision, Recompute, TrainingSpec


@st.composite
def models(draw) -> ModelSpec:
    heads = draw(st.sampled_from([4, 8, 16, 32]))
    kv = draw(st.sampled_from([k for k in (1, 2, 4, 8, 16, 32) if heads % k == 0]))
    head_dim = draw(st.sampled_from([32, 64, 128]))
    gpt = draw(st.booleans())
    return ModelSpec(
        name="random",
        family="gpt2" if gpt else "llama",
        num_layers=draw(st.sampled_from([2, 4, 6, 8, 12, 24])),
        hidden_size=heads * head_dim,
        num_heads=heads,
        num_kv_heads=heads if gpt else kv,
        head_dim=head_dim,
        ffn_hidden_size=64 * draw(st.integers(4, 200)),
        vocab_size=draw(st.integers(1000, 130000)),
        max_position_embeddings=4096,
        gated_mlp=not gpt,
        qkv_bias=gpt,
        out_bias=gpt,
        mlp_bias=gpt,
        norm=NormType.LAYERNORM if gpt else NormType.RMSNORM,
        norm_bias=gpt,
        positions=PositionEncoding.LEARNED if gpt else PositionEncoding.ROTARY,
        tied_embeddings=draw(st.booleans()),
        dropout=draw(st.sampled_from([0.0, 0.1])),
    )


@st.composite
def trainings(draw, global_batch: int | None = None) -> TrainingSpec:
    return TrainingSpec(
        seq_len=draw(st.sampled_from([128, 512, 1024, 2048, 4096])),
        global_batch_size=global_batch or draw(st.sampled_from([8, 16, 32, 64, 128])),
        precision=draw(st.sampled_from(list(Precision))),
        framework=draw(st.sampled_from(list(Framework))),
        flash_attention=draw(st.booleans()),
    )


recomputes = st.sampled_from(list(Recompute))


@st.composite
def roomy_hardware(draw, base):
    """Absurd but valid GPUs: memory from half a GiB to 10^18 bytes (``--mem 1000000TB``), peak
    FLOP/s and bandwidths from a millionth to a million times ``base``'s."""
    return replace(
        base,
        memory_bytes=draw(st.sampled_from([2**29, 24e9, 80e9, 1e12, 1e15, 1e18])) * draw(st.floats(0.5, 1.0)),
        peak_flops=base.peak_flops * draw(st.sampled_from([1e-6, 1e-3, 1.0, 1e6])),
        hbm_bandwidth_bytes_per_s=base.hbm_bandwidth_bytes_per_s * draw(st.sampled_from([1e-6, 1.0, 1e6])),
        inter_node_bandwidth_bytes_per_s=base.inter_node_bandwidth_bytes_per_s
        * draw(st.sampled_from([1e-6, 1.0, 1e6])),
    )


global_batches = st.sampled_from([8, 64, 1024, 2**20, 2**34])
"""Global batches from a few sequences to 2^34 (~7e13 tokens at 4096: steps of years)."""


# Attacks on the input boundary (issue 12): strings that try to leave their context in a generated
# script, and numbers that are not finite or not sane.
MARKER = "@MARKER@"  # replaced by a test with the path of a file the injected command would create
SHELL_PIECES = [
    "\n",
    "\r",
    "\r\n",
    "'",
    '"',
    "$(",
    ")",
    "`",
    ";",
    "&&",
    "|",
    "\\",
    " ",
    "#",
    "$HOME",
    "${IFS}",
    "*",
    "-",
    "--",
    "=",
    "\t",
    "\x00",
    "\x1b[31m",
    "\u2028",
    "\u202e",
    "é",
    "名前",
    "🚀",
    f"touch {MARKER}",
    f"$(touch {MARKER})",
    f"`touch {MARKER}`",
    f"\ntouch {MARKER}\n",
    f"'; touch {MARKER}; '",
    f'"; touch {MARKER}; "',
]
hostile_strings = st.lists(
    st.one_of(st.sampled_from(SHELL_PIECES), st.text(max_size=3)), min_size=1, max_size=10
).map("".join)
"""Names as colleagues' files may hold them: newlines, quotes, ``$()``, backticks, unicode."""
printable_hostile_strings = hostile_strings.filter(
    lambda s: s.strip() and len(s) <= 200 and not any(c in s for c in "\n\r\t\x00\x1b\u2028\u202e")
).filter(lambda s: all(c.isprintable() or c == " " for c in s))
"""The same without control characters: what the loaders accept and the emitters must quote."""

non_finite = st.sampled_from([float("nan"), float("inf"), float("-inf")])
absurd_integers = st.one_of(
    st.integers(min_value=10**13, max_value=10**40), st.integers(min_value=-(10**30), max_value=-1)
)
bad_number_texts = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "Infinity", "NaN", "1e400", "-1e400", "1e309"]),
    st.integers(min_value=300, max_value=5000).map(lambda e: f"1e{e}"),
    absurd_integers.map(str),
)
"""Text of a number that is not finite or far outside any sane range."""


odd_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    hostile_strings,
)
odd_keys = st.one_of(
    st.text(max_size=12), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False)
)
odd_values = st.recursive(
    odd_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(odd_keys, children, max_size=3),
    max_leaves=8,
)
"""What a colleague's file may hold where a number or a name belongs."""


@st.composite
def odd_documents(draw, base: dict) -> object:
    """``base`` (a valid model or hardware mapping) with some values replaced by odd ones, odd keys
    added, or the whole document replaced."""
    if draw(st.integers(0, 9)) == 0:
        return draw(odd_values)
    doc = dict(base)
    for key in draw(st.lists(st.sampled_from(sorted(base)), min_size=1, max_size=3, unique=True)):
        doc[key] = draw(odd_values)
    doc.update(draw(st.dictionaries(odd_keys, odd_values, max_size=2)))
    return doc
