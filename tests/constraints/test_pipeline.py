"""Layer splits over pipeline ranks against Megatron-LM's own ``TransformerConfig`` checks and
``get_num_layers_to_build`` (``tests/fixtures/megatron_stage_layers.json``, made by
``tests/fixtures/scripts/megatron_stage_layers.py``)."""

import pytest

from constraints.activations import in_flight_layer_microbatches
from constraints.pipeline import (
    MAX_END_STAGE_TRIM,
    SplitForm,
    account_for_ends,
    end_stage_split_is_whole,
    end_stage_splits,
    megatron_split_form,
    stage_in_flight_layer_microbatches,
    stage_layer_counts,
)

from conftest import fixture

ROWS = fixture("megatron_stage_layers.json")["rows"]
FORM_FLAGS = {
    SplitForm.EVEN: set(),
    SplitForm.ACCOUNT: {"account_for_embedding_in_pipeline_split", "account_for_loss_in_pipeline_split"},
    SplitForm.ENDS: {"num_layers_in_first_pipeline_stage", "num_layers_in_last_pipeline_stage"},
}


def accepted_splits() -> dict[tuple, list[dict]]:
    """(layers, pp, vpp, per-stage counts) -> the accepted flag sets that build it."""
    out: dict[tuple, list[dict]] = {}
    for row in ROWS:
        if row["accepted"]:
            key = (row["num_layers"], row["pp"], row["vpp"], tuple(row["layers_per_stage"]))
            out.setdefault(key, []).append(row["flags"])
    return out


ACCEPTED = accepted_splits()


@pytest.mark.parametrize("key", sorted(ACCEPTED), ids=str)
def test_counts_and_form_match_megatron(key):
    num_layers, pp, vpp, counts = key
    first, last = counts[0], counts[-1]
    assert end_stage_split_is_whole(num_layers, pp, first, last)
    assert stage_layer_counts(num_layers, pp, first, last) == counts
    form = megatron_split_form(num_layers, pp, vpp, first, last)
    assert form is not None, "Megatron builds this split; the planner must be able to say it"
    # the form the planner picks is one of the flag sets Megatron accepted for these counts
    assert any(
        set(flags) <= FORM_FLAGS[form] and (bool(flags) == (form is not SplitForm.EVEN))
        for flags in ACCEPTED[key]
    )


def test_refused_splits_are_refused():
    """Every split of the grid that no accepted flag set builds has no Megatron form."""
    built = {(n, pp, vpp, c[0], c[-1]) for n, pp, vpp, c in ACCEPTED}
    tried = set()
    for row in ROWS:
        n, pp, vpp, flags = row["num_layers"], row["pp"], row["vpp"], row["flags"]
        if "num_layers_in_first_pipeline_stage" in flags:
            tried.add(
                (
                    n,
                    pp,
                    vpp,
                    flags["num_layers_in_first_pipeline_stage"],
                    flags["num_layers_in_last_pipeline_stage"],
                )
            )
    refused = tried - built
    assert refused, "the grid must contain refused splits"
    for n, pp, vpp, first, last in refused:
        assert megatron_split_form(n, pp, vpp, first, last) is None, (n, pp, vpp, first, last)


@pytest.mark.parametrize(
    ("num_layers", "pp", "split"),
    [(126, 16, (7, 7)), (70, 12, (5, 5)), (61, 16, (2, 3)), (80, 8, (10, 10))],
)
def test_recipe_splits_are_searched(num_layers, pp, split):
    """Llama 3.1 405B (pp 16), BLOOM-176B (pp 12), DeepSeek-V3 (pp 16), an even split."""
    assert split in end_stage_splits(num_layers, pp)


def test_searched_splits_have_light_ends_only():
    for num_layers, pp in [(126, 16), (70, 12), (32, 4), (61, 2), (94, 8)]:
        for first, last in end_stage_splits(num_layers, pp):
            counts = stage_layer_counts(num_layers, pp, first, last)
            assert sum(counts) == num_layers and min(counts) >= 1
            assert max(counts) - min(first, last) <= 2


def test_searched_splits_are_every_whole_split_with_light_ends():
    """The splits are exactly those of the docstring's definition, checked pair by pair: whole
    (``end_stage_split_is_whole``), no end heavier than a middle stage (with pp = 2 either end may be
    the heavier) and no end more than ``MAX_END_STAGE_TRIM`` below the heaviest stage."""
    for num_layers in range(1, 131):
        for pp in range(2, 21):
            expected = []
            for first in range(1, num_layers):
                for last in range(1, num_layers - first + 1):
                    if not end_stage_split_is_whole(num_layers, pp, first, last):
                        continue
                    counts = stage_layer_counts(num_layers, pp, first, last)
                    if pp > 2 and max(counts) != counts[1]:
                        continue
                    if max(counts) - min(first, last) <= MAX_END_STAGE_TRIM:
                        expected.append((first, last))
            assert end_stage_splits(num_layers, pp) == tuple(expected), (num_layers, pp)


@pytest.mark.parametrize(("pp", "vpp", "m"), [(4, 1, 16), (4, 2, 16), (8, 4, 3), (1, 1, 8)])
def test_even_split_in_flight_equals_the_model_wide_formula(pp, vpp, m):
    layers = 32
    for stage in range(pp):
        assert stage_in_flight_layer_microbatches(layers // pp, pp, vpp, stage, m) == pytest.approx(
            in_flight_layer_microbatches(layers, pp, vpp, stage, m)
        )


def test_account_for_flags_match_the_ones_megatron_accepted():
    checked = 0
    for row in ROWS:
        flags, counts = row["flags"], row.get("layers_per_stage")
        if not row["accepted"] or "num_layers_in_first_pipeline_stage" in flags or len(set(counts)) == 1:
            continue
        expected = (
            flags.get("account_for_embedding_in_pipeline_split", False),
            flags.get("account_for_loss_in_pipeline_split", False),
        )
        got = account_for_ends(row["num_layers"], row["pp"], row["vpp"], counts[0], counts[-1])
        assert got == expected, row
        checked += 1
    assert checked > 20
