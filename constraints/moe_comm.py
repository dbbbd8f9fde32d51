"""Token dispatch of mixture-of-experts layers: flat all-to-all and hierarchical (DeepEP) dispatch.

Flat all-to-all (Megatron-Core ``--moe-token-dispatcher-type alltoall``): each of the ``k`` copies
of a token goes to the rank of its expert, so a rank's copies bound for other nodes all cross the
network: ``k * (nodes - 1) / nodes`` of them per token (``throughput.all_to_all_s`` on the slower
link).

Hierarchical (``--moe-token-dispatcher-type flex`` with the DeepEP or HybridEP backend): a token
crosses the network once per destination node, to the GPU with the same in-node index, and is then
forwarded over NVLink to the experts on that node that chose it; combine is the reverse (DeepSeek-AI
2024, "DeepSeek-V3 Technical Report", arXiv:2412.19437, Section 3.2.2; the DeepEP repository's
README, "normal kernels" with NVLink and RDMA forwarding). DeepEP runs the RDMA and NVLink stages
concurrently, so the slower of the two sets the time.

Legend: ``k`` experts per token, ``nodes`` NVLink domains the expert-parallel group spans,
``g`` its ranks per domain.
"""


def expected_remote_nodes(k: int, nodes: int) -> float:
    """Other nodes a token must reach when its ``k`` experts fall uniformly over ``nodes`` nodes:
    each other node holds at least one of them with probability ``1 - (1 - 1/nodes)^k``."""
    if nodes <= 1:
        return 0.0
    return (nodes - 1) * (1 - (1 - 1 / nodes) ** k)


def hierarchical_dispatch_s(
    token_bytes: float,
    k: int,
    nodes: int,
    g: int,
    nvlink_bytes_per_s: float,
    network_bytes_per_s: float,
) -> float:
    """One dispatch (or combine) of ``token_bytes`` of tokens per rank, hierarchically: each token
    once to every other node holding one of its experts, over the network; its ``k`` copies to their
    experts' ranks within each node over NVLink (all but the ``1/g`` that stay on this rank)."""
    network = token_bytes * expected_remote_nodes(k, nodes) / network_bytes_per_s
    nvlink = token_bytes * k * (g - 1) / g / nvlink_bytes_per_s if g > 1 else 0.0
    return max(network, nvlink)


def flat_dispatch_network_copies(k: int, nodes: int) -> float:
    """Copies of one token that cross the network under a flat all-to-all: ``k (nodes - 1)/nodes``."""
    if nodes <= 1:
        return 0.0
    return k * (nodes - 1) / nodes
