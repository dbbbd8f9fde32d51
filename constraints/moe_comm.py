"""Token dispatch of mixture-of-experts layers: flat all-to-all and hierarchical (DeepEP) dispatch.

Flat all-to-all (Megatron-Core ``--moe-token-dispatcher-type alltoall``,
``megatron/core/transformer/moe/token_dispatcher.py``, ``MoEAlltoAllTokenDispatcher``): the token is
permuted into one copy per chosen expert (``num_out_tokens`` = tokens x top-k) and each copy goes to
its expert's rank over the expert-parallel group, so ``k`` copies leave a rank per token whatever the
experts' placement; with expert tensor parallelism the received copies are then all-gathered over
the ``etp`` ranks of each expert (``gather_from_sequence_parallel_region`` on the expert-TP group)
and reduce-scattered after the experts.

Hierarchical (``--moe-token-dispatcher-type flex --moe-flex-dispatcher-backend deepep``, Megatron-Core
``MoEFlexTokenDispatcher`` at d98e8a64): one dispatch group over the ``etp * ep`` ranks, each expert
shard a destination (``router_topk = tp * topk``). DeepEP's normal kernels send a token once to every
rank that holds one of its experts (``num_tokens_per_rank`` counts a token once per rank) and, across
NVLink domains, once over the network to every other domain holding one of them (to the GPU with
the same in-domain index, ``num_tokens_per_rdma_rank``), which forwards it over NVLink (DeepSeek-AI
2024, "DeepSeek-V3 Technical Report", arXiv:2412.19437, Section 3.2.2; DeepEP
``tests/legacy/test_internode.py`` and ``csrc/kernels/internode.cu`` at dd758caf). The network and
NVLink stages run concurrently, so the slower sets the time. Combine is the same traffic reversed.

Legend: ``k`` experts per token (distinct), ``E`` routed experts, spread evenly over ``ep`` ranks
(``E/ep`` each) and so over ``nodes`` NVLink domains; ``g`` ranks of the dispatch group per domain;
``etp`` expert-tensor-parallel ranks per expert. Routing is taken as balanced (experts chosen
uniformly), within the groups a group-limited router allows.
"""

from math import comb


def hit_probability(k: int, num_experts: int, groups: int) -> float:
    """Probability that one of ``groups`` equal sets of experts holds at least one of a token's
    ``k`` distinct experts drawn uniformly (top-k of balanced routing): ``1 - C(E - E/groups, k) /
    C(E, k)`` (hypergeometric; ``E/groups`` whole, as expert parallelism requires)."""
    if groups <= 1:
        return 1.0
    return 1.0 - comb(num_experts - num_experts // groups, k) / comb(num_experts, k)


def grouped_hit_probability(k: int, num_experts: int, parts: int, groups: int, group_topk: int) -> float:
    """``hit_probability`` under group-limited routing (DeepSeek-V3's node-limited routing,
    Megatron-Core ``group_limited_topk``: the experts form ``groups`` contiguous groups and a token
    takes its ``k`` experts from its best ``group_topk`` groups), for ``parts`` equal contiguous
    sets of experts (ranks or domains). A group is picked for its best experts (DeepEP's test scores
    it by its best one, DeepSeek-V3 by its best two), so each picked group holds at least one of the
    token's experts, uniformly placed, and the other ``k - group_topk`` fall uniformly on the picked
    groups' remaining experts. A part of whole groups is hit when one of its groups is picked; a
    part of a group when that group is picked and its expert, or one of the others, lands there.
    Without groups, or when parts and groups do not nest, ``hit_probability``."""
    if groups <= 1 or group_topk >= groups or (groups % parts and parts % groups):
        return hit_probability(k, num_experts, parts)
    if parts <= groups:  # whole groups per part
        own = groups // parts
        return 1.0 - comb(groups - own, group_topk) / comb(groups, group_topk)
    share = parts // groups  # parts per group
    rest = group_topk * (num_experts // groups) - group_topk  # experts left in the picked groups
    held = num_experts // parts
    missed = (1 - 1 / share) * comb(rest - held, k - group_topk) / comb(rest, k - group_topk)
    return group_topk / groups * (1.0 - missed)


def expected_remote_nodes(
    k: int, num_experts: int, nodes: int, groups: int = 0, group_topk: int = 0
) -> float:
    """Other NVLink domains a token must reach (DeepEP's RDMA sends per token) when the experts
    spread evenly over ``nodes`` domains: ``(nodes - 1)`` times the chance that one holds one of its
    experts (``grouped_hit_probability``; ``groups`` 0: no group-limited routing)."""
    if nodes <= 1:
        return 0.0
    return (nodes - 1) * grouped_hit_probability(k, num_experts, nodes, groups, group_topk)


def expected_ranks_reached(
    k: int, num_experts: int, ep: int, etp: int = 1, groups: int = 0, group_topk: int = 0
) -> float:
    """Distinct ranks of the dispatch group a token is sent to (DeepEP's ``num_tokens_per_rank``
    per token): each of the ``ep`` expert-parallel ranks holding one of its experts, times the
    ``etp`` shards of each."""
    return etp * ep * grouped_hit_probability(k, num_experts, ep, groups, group_topk)


def flat_dispatch_network_copies(k: int, nodes: int) -> float:
    """Copies of one token that cross the network under a flat all-to-all: of its ``k`` copies,
    those whose experts live in the other ``nodes - 1`` domains, ``k (nodes - 1)/nodes``."""
    if nodes <= 1:
        return 0.0
    return k * (nodes - 1) / nodes


def hierarchical_dispatch_s(
    token_bytes: float,
    k: int,
    num_experts: int,
    ep: int,
    etp: int,
    domain_ranks: int,
    nvlink_bytes_per_s: float,
    network_bytes_per_s: float,
    groups: int = 0,
    group_topk: int = 0,
) -> float:
    """One DeepEP dispatch (or combine) of ``token_bytes`` of tokens per rank over a group of
    ``etp * ep`` consecutive ranks, NVLink domains of ``domain_ranks``: each token once over the
    network to every other domain holding one of its experts, and over NVLink to every rank holding
    one (all but the ``1/g`` already there), the two stages at once. ``g`` is the group's ranks per
    domain; ``groups``, ``group_topk``: group-limited routing, if the model routes so."""
    ranks = etp * ep
    g = min(ranks, domain_ranks)
    nodes = max(1, ranks // domain_ranks)
    remote = expected_remote_nodes(k, num_experts, nodes, groups, group_topk)
    network = token_bytes * remote / network_bytes_per_s
    copies = expected_ranks_reached(k, num_experts, ep, etp, groups, group_topk) * (g - 1) / g
    nvlink = token_bytes * copies / nvlink_bytes_per_s
    return max(network, nvlink)


def expert_tp_gather_bytes(token_bytes: float, k: int, etp: int) -> float:
    """Bytes each rank holds after the all-to-all dispatcher's all-gather over the ``etp`` ranks of
    its experts: the ``k`` copies of its share of tokens from each of them (the reduce-scatter after
    the experts returns the same)."""
    return token_bytes * k * etp
