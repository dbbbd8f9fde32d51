"""The layout record: the document's ``parallelism`` block reads back to the layout it came from."""

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from planner.errors import PlannerError
from planner.layout import config_from_block, parallelism_block
from planner.specs import ParallelConfig, Recompute, ZeroStage


@st.composite
def layouts(draw) -> ParallelConfig:
    tp, pp, cp = (
        draw(st.sampled_from([1, 2, 8])),
        draw(st.sampled_from([1, 4])),
        draw(st.sampled_from([1, 2])),
    )
    dp = draw(st.sampled_from([1, 2, 16]))
    return ParallelConfig(
        tp=tp,
        pp=pp,
        dp=dp,
        cp=cp,
        vpp=draw(st.sampled_from([1, 3])) if pp > 1 else 1,
        ep=draw(st.sampled_from([e for e in (1, 2, 4) if (tp * cp * dp) % e == 0])),
        zero_stage=draw(st.sampled_from(list(ZeroStage))),
        recompute=draw(st.sampled_from(list(Recompute))),
        micro_batch_size=draw(st.integers(1, 8)),
        sequence_parallel=draw(st.booleans()) and tp > 1,
        optimizer_offload=draw(st.booleans()),
        activation_offload=draw(st.booleans()),
    )


@given(layouts(), st.integers(1, 64))
def test_parallelism_block_reads_back_through_yaml(config, grad_accum):
    block = yaml.safe_load(yaml.safe_dump(parallelism_block(config, grad_accum)))
    assert config_from_block(block, "plan.yaml: parallelism") == config


@pytest.mark.parametrize(
    "block, message",
    [
        ({"tp": 1, "pp": 1}, r"p: missing key 'dp'"),
        ({"tp": 1, "pp": 1, "dp": 2, "mbs": 2}, r"p: unknown key\(s\) mbs; use tp, pp, dp"),
        ({"tp": True, "pp": 1, "dp": 2}, r"p.tp must be a positive integer, got True"),
        ({"tp": 1, "pp": 1, "dp": 2, "zero_stage": "1"}, r"p.zero_stage must be one of 0, 1, 2, 3, got '1'"),
        (
            {"tp": 1, "pp": 1, "dp": 2, "zero_stage": True},
            r"p.zero_stage must be one of 0, 1, 2, 3, got True",
        ),
        (
            {"tp": 1, "pp": 1, "dp": 2, "recompute": "FULL"},
            r"p.recompute must be one of none, selective, full",
        ),
        ([1, 2], r"p must be a mapping"),
    ],
)
def test_bad_blocks_name_the_key(block, message):
    with pytest.raises(PlannerError, match=message):
        config_from_block(block, "p")
