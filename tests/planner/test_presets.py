"""GPU presets: data files whose every number names its source."""

import pytest
import yaml

from planner.hardware import ALIASES, HARDWARE_KEYS, PRESET_DIR, PRESETS, preset
from planner.profile import CONSTANT_NAMES

FILES = sorted(PRESET_DIR.glob("*.yaml"))


def test_every_former_name_and_the_new_gpus_resolve():
    for name in ("a100-40gb", "a100-80gb", "h100-80gb", "h200", "b200", "h100-96gb", "gb200", "gb300"):
        assert preset(name).name == name
    assert all(preset(alias).name == target for alias, target in ALIASES.items())


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_number_names_its_source(path):
    data = yaml.safe_load(path.read_text())
    numbers = [k for k in data if k in HARDWARE_KEYS and k not in ("gpus_per_node", "nvlink_domain_gpus")]
    provenance = data["provenance"]
    assert not [k for k in numbers if k not in provenance], "a datasheet number without its source"
    assert all(provenance[k].startswith(("vendor:", "assumed:")) for k in numbers)
    if data.get("constants"):
        assert set(data["constants"]) <= set(CONSTANT_NAMES)
        assert provenance["constants"].startswith("fit:")


def test_nvl72_racks_are_one_nvlink_domain_of_four_gpu_trays():
    for name in ("gb200", "gb300"):
        assert (PRESETS[name].gpus_per_node, PRESETS[name].nvlink_domain_gpus) == (4, 72)
    assert PRESETS["b200"].nvlink_domain_gpus == PRESETS["b200"].gpus_per_node == 8


def test_the_driver_reported_capacity_stays_exact():
    """nvidia-smi's MiB figures, as the earlier built-in presets had them."""
    assert PRESETS["h100-80gb"].memory_bytes == 81559 * 2**20
    assert PRESETS["a100-80gb"].memory_bytes == 81920 * 2**20
    assert PRESETS["h200"].memory_bytes == 143771 * 2**20


def test_same_die_shares_the_fitted_constants():
    """H200 and the 96 GB H100 are the H100 SXM5 die: the H100 generation's fit applies."""
    h100 = PRESETS["h100-80gb"].step_constants
    assert PRESETS["h200"].step_constants == h100 == PRESETS["h100-96gb"].step_constants
