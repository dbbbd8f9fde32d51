"""Pipeline stages: how many decoder layers each stage holds.

Megatron-LM splits the layers evenly over the ``pp`` ranks, or gives the first and the last rank
their own counts and spreads the rest evenly over the ``pp - 2`` middle ranks
(``--decoder-first-pipeline-num-layers``, ``--decoder-last-pipeline-num-layers``), or counts the
embedding and the loss as one layer each of the first and last rank
(``--account-for-embedding-in-pipeline-split``, ``--account-for-loss-in-pipeline-split``: those
ranks build one decoder layer fewer). Source: ``megatron/core/transformer/transformer_block.py``
``get_num_layers_to_build`` at commit d98e8a64; ``TransformerConfig.__post_init__`` checks the split
(``tests/fixtures/megatron_stage_layers.json`` records both for a grid of splits).

Why the ends are lighter: the first stage holds ``pp`` micro-batches of activations under 1F1B
(Narayanan et al. 2021, Section 2.2.1) and the embedding; the last stage runs the LM head and the
loss. Llama 3 405B ran its 126 layers on 16 stages with one Transformer layer fewer on the first
and on the last stage, so that the first model chunk holds only the embedding and the last only the
output projection and loss (Dubey et al. 2024, "The Llama 3 Herd of Models", Section 3.3.2; pp 16 in
Table 4): Megatron's account-for flags. BLOOM-176B ran 70 layers on 12 stages, 5 on each end and 6
on the others (its Megatron-DeepSpeed partition counted the embedding and head as stage work).
"""

from enum import Enum
from functools import cache

MAX_END_STAGE_TRIM = 2
"""Layers an end stage may hold below a middle stage in the searched splits: the recipes trim one
(Llama 3 405B, BLOOM, Megatron's account-for flags); two more covers DeepSeek-V3's 61 layers on 16
stages (4 per middle stage, 2 and 3 at the ends)."""


def stage_layer_counts(num_layers: int, pp: int, first: int, last: int) -> tuple[int, ...]:
    """Decoder layers on each pipeline rank, first to last, when rank 0 holds ``first``, rank
    ``pp - 1`` holds ``last`` and the ``pp - 2`` middle ranks share the rest evenly (Megatron-LM
    ``get_num_layers_to_build``). ``pp = 1``: one rank with every layer. The caller checks the split
    with ``end_stage_split_is_whole`` first."""
    if pp == 1:
        return (num_layers,)
    middle = (num_layers - first - last) // (pp - 2) if pp > 2 else 0
    return (first, *([middle] * (pp - 2)), last)


def end_stage_split_is_whole(num_layers: int, pp: int, first: int, last: int) -> bool:
    """Every rank gets at least one layer and the middle ranks the same whole number (Megatron-LM
    ``TransformerConfig.__post_init__``: "number of layers at middle stage ... must be divisible by
    the middle pipeline model parallel size")."""
    if pp == 1:
        return first == last == num_layers
    rest = num_layers - first - last
    if first < 1 or last < 1 or rest < 0:
        return False
    if pp == 2:
        return rest == 0
    return rest >= pp - 2 and rest % (pp - 2) == 0


def end_stage_splits(
    num_layers: int, pp: int, max_trim: int = MAX_END_STAGE_TRIM
) -> tuple[tuple[int, int], ...]:
    """The (first, last) layer counts worth searching: each end at most as heavy as a middle stage
    and at most ``max_trim`` layers lighter (heavier ends only add to the stage that is already the
    most loaded, in memory at the first, in time at the last). With ``pp = 2`` the two ranks differ
    by at most ``max_trim``. The even split, when there is one, is among them; sorted."""
    if pp == 1:
        return ((num_layers, num_layers),)
    # Enumerated from the heaviest stage's count ``m`` (a middle one; with pp = 2 the heavier end):
    # both ends lie in [m - max_trim, m], the middle ranks take m each, and the last end is what
    # remains, so ``m*pp - 2*max_trim <= num_layers <= m*pp`` bounds ``m``: a few steps for any
    # size (the direct test of every (first, last) pair was quadratic in the layers, and
    # ``build_space`` asks for every pp).
    splits = []
    middle_ranks = pp - 2
    for m in range(max(1, num_layers // pp), (num_layers + 2 * max_trim) // pp + 1):
        for first in range(max(1, m - max_trim), m + 1):
            last = num_layers - first - m * middle_ranks
            if pp == 2 and max(first, last) != m:
                continue  # pp = 2: m is the heavier of the two ends
            if max(1, m - max_trim) <= last <= m:
                splits.append((first, last))
    return tuple(sorted(splits))


def stage_in_flight_layer_microbatches(
    stage_layers: int, pp: int, vpp: int, stage: int, num_microbatches: int
) -> float:
    """Layer-micro-batches whose activations rank ``stage`` holds at once, for a rank with
    ``stage_layers`` layers in ``vpp`` model chunks.

    1F1B (``vpp = 1``): the stage's layers times ``min(pp - stage, m)`` micro-batches (Narayanan et
    al. 2021, Section 2.2.1). Interleaved 1F1B: the warm-up of Megatron-LM's schedule
    (``megatron/core/pipeline_parallel/schedules.py``: ``(pp - rank - 1)*2 + (vpp - 1)*pp`` chunks
    plus the one in flight), at most all ``vpp*m`` chunks, each ``stage_layers/vpp`` layers; on the
    first stage of an even split this is ``layers*(1 + (pp - 1)/(pp*vpp))``, Korthikanti et al. 2022
    Section 4.2.3.
    """
    if vpp == 1:
        return stage_layers * max(1, min(pp - stage, num_microbatches))
    chunks = min((pp - stage - 1) * 2 + (vpp - 1) * pp + 1, vpp * num_microbatches)
    return chunks * stage_layers / vpp


class SplitForm(Enum):
    """How Megatron-LM is told a layer split (``megatron_split_form``)."""

    EVEN = "even"
    """Every rank the same count: no flag."""
    ACCOUNT = "account"
    """The embedding and/or the loss counted as a layer of the first/last rank:
    ``--account-for-embedding-in-pipeline-split``, ``--account-for-loss-in-pipeline-split``."""
    ENDS = "ends"
    """``--decoder-first-pipeline-num-layers``, ``--decoder-last-pipeline-num-layers``."""


def account_for_ends(num_layers: int, pp: int, vpp: int, first: int, last: int) -> tuple[bool, bool] | None:
    """Whether Megatron-LM builds this split by counting the embedding (first stage) and/or the
    loss (last stage) as one layer each, as (embedding counted, loss counted), or None when it
    cannot: every rank then holds ``(layers + counted)/pp`` layer slots, divisible by ``vpp``, and a
    counted end builds one decoder layer fewer (``get_num_layers_to_build``)."""
    if not end_stage_split_is_whole(num_layers, pp, first, last) or pp == 1:
        return None
    counts = stage_layer_counts(num_layers, pp, first, last)
    nominal = max(counts[1:-1]) if pp > 2 else max(first, last)
    for per_rank in (nominal, nominal + 1):  # pp = 2: both ends may be the counted ones
        trims = (per_rank - first, per_rank - last)
        if (
            all(x in (0, 1) for x in trims)
            and any(trims)
            and (pp == 2 or per_rank == nominal)
            and per_rank * pp == num_layers + sum(trims)
            and per_rank % vpp == 0
        ):
            return trims[0] == 1, trims[1] == 1
    return None


@cache  # the search asks for every layout; many share the split (tp, cp, ep change nothing here)
def megatron_split_form(num_layers: int, pp: int, vpp: int, first: int, last: int) -> SplitForm | None:
    """The first of Megatron-LM's ways to build this split, or None if it has none.

    Rules of ``TransformerConfig.__post_init__`` and ``get_num_layers_to_build`` (commit d98e8a64),
    with ``vpp`` model chunks per rank: an even split needs ``layers/pp`` divisible by ``vpp``; the
    account-for form (``account_for_ends``) needs ``(layers + a)/pp`` (``a`` = embedding and loss
    counted) divisible by ``vpp``; explicit end counts need the first, the last and the middle
    ranks' counts each divisible by ``vpp`` (``tests/fixtures/megatron_stage_layers.json``).
    """
    if not end_stage_split_is_whole(num_layers, pp, first, last):
        return None
    if pp == 1:
        return SplitForm.EVEN
    counts = stage_layer_counts(num_layers, pp, first, last)
    if len(set(counts)) == 1 and counts[0] % vpp == 0:
        return SplitForm.EVEN
    if account_for_ends(num_layers, pp, vpp, first, last) is not None:
        return SplitForm.ACCOUNT
    if all(n % vpp == 0 for n in counts):
        return SplitForm.ENDS
    return None
