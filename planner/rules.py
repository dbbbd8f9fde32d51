"""Which layouts a model admits: divisibility rules with messages that say what would work."""

from planner.specs import ModelSpec


def divisors(n: int) -> list[int]:
    """Positive divisors of ``n``, ascending."""
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def valid_tp(model: ModelSpec) -> list[int]:
    """TP sizes that split the query and KV heads evenly (Megatron-LM ``validate_args``)."""
    return [t for t in divisors(model.num_heads) if model.num_kv_heads % t == 0]


def valid_pp(model: ModelSpec) -> list[int]:
    """PP sizes that give every stage the same number of layers."""
    return divisors(model.num_layers)


def valid_cp(seq_len: int) -> list[int]:
    """Context-parallel sizes: Megatron's load-balanced ring splits each sequence into ``2*cp``
    chunks, so ``2*cp`` must divide it."""
    return [c for c in divisors(seq_len) if seq_len % (2 * c) == 0 or c == 1]


def valid_vpp(model: ModelSpec, pp: int) -> list[int]:
    """Virtual stages per rank: 1, or (with pp > 1) a divisor of the layers per stage
    (Megatron-LM: layers divisible by pp * vpp)."""
    if pp == 1:
        return [1]
    return divisors(model.num_layers // pp)


def valid_ep(model: ModelSpec) -> list[int]:
    """Expert-parallel sizes: divisors of the routed experts (1 for a dense model)."""
    return divisors(model.num_experts) if model.is_moe else [1]
