"""Step time: where the model decides NVLink against the network."""

from dataclasses import replace

import pytest

from planner.hardware import preset
from planner.performance import performance
from planner.space import Pins, build_space
from planner.specs import ParallelConfig, TrainingSpec


@pytest.fixture
def training() -> TrainingSpec:
    return TrainingSpec(seq_len=4096, global_batch_size=256)


def test_tp_inside_the_nvlink_domain_uses_nvlink(llama13b, training):
    """tp=16 spans two 8-GPU nodes: over the network unless one NVLink domain holds both."""
    node = preset("h100-80gb")
    rack = replace(node, nvlink_domain_gpus=16)
    config = ParallelConfig(tp=16, pp=1, dp=4)
    over_network = performance(llama13b, node, training, config).breakdown["tp_comm"]
    over_nvlink = performance(llama13b, rack, training, config).breakdown["tp_comm"]
    ratio = node.intra_node_bandwidth_bytes_per_s / node.inter_node_bandwidth_bytes_per_s
    assert over_network / over_nvlink == pytest.approx(ratio)


def test_space_bounds_tp_by_the_nvlink_domain(llama13b, training):
    tps = {layout[0] for layout in build_space(llama13b, training, 80, Pins(), 8).layouts}
    wide = {layout[0] for layout in build_space(llama13b, training, 80, Pins(), 40).layouts}
    assert max(tps) == 8 and max(wide) > 8
