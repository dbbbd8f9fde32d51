"""The accuracy and calibration scripts in a fresh clone without ../shared."""

import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("script", ["accuracy.py", "calibrate.py"])
def test_missing_calibration_data_is_one_line_and_exit_2(script, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--published", str(tmp_path / "published.yaml")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("Error: --published: no calibration data at ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def _entry(**parallel):
    """A calibration-data entry as ``../shared/calibration/published.yaml`` writes one: the Megatron-
    Bridge 25.11 Llama 3 70B FP8-CS row on GB200 (its stated fields; unstated ones null)."""
    return {
        "id": "mbridge2511-dgx-gb200-llama3-70b-64gpu-fp8-cs",
        "gpu": "GB200",
        "gpus": 64,
        "precision": "FP8-CS",
        "model": {
            "name": "Llama-3-70B",
            "layers": 80,
            "hidden": 8192,
            "heads": 64,
            "kv_heads": 8,
            "ffn_hidden": 28672,
            "vocab": 128256,
            "seq_len": 8192,
            "activation": "swiglu",
            "moe": None,
        },
        "parallel": {"tp": 1, "pp": 1, "cp": 1, "mbs": 2, "gbs": 256, "recompute": None} | parallel,
        "measured": {"tokens_per_s_per_gpu": 4300},
    }


def test_the_loader_reads_what_the_recipes_leave_unstated():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from published import row_of

    fp8 = row_of(_entry())
    assert fp8.training.precision.value == "fp8" and fp8.training.fp8_param_gather
    assert fp8.hardware.name == "gb200" and fp8.generation == "GB200" and fp8.family == "mbridge2511"
    assert row_of(_entry(tp=4)).config.sequence_parallel  # unstated, on with tp (NeMo recipes)
    assert not row_of(_entry(tp=4, sequence_parallel=False)).config.sequence_parallel
    assert row_of(_entry(recompute="selective (norm, act)")).config.recompute.value == "selective"


def test_the_loader_reads_the_clusters_network_and_deepspeeds_pipeline_where_the_source_says():
    """BLOOM's paper (Le Scao et al. 2022, Section 3.4.1): Jean Zay's nodes of 8 A100s have four
    100 Gb/s Omni-Path links; MosaicML's table states 1600 Gbps per node; DeepSpeed's pipeline
    engine reduces gradients after the last micro-batch (``TrainSchedule.steps``)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from planner.hardware import preset

    from published import row_of

    plain = row_of(_entry())
    assert plain.hardware == preset("gb200")  # no network stated: the preset's NIC per GPU
    assert plain.training.overlap_grad_reduce and plain.training.overlap_param_gather
    notes = "Megatron-DeepSpeed on 48-node Jean Zay partition"
    jean_zay = _entry(pp=2) | {"notes": notes, "gpu": "A100-80GB-SXM"}
    bloom = row_of(jean_zay)
    assert bloom.hardware.inter_node_bandwidth_bytes_per_s == 4 * 100e9 / 8 / 8
    assert not bloom.training.overlap_grad_reduce and not bloom.training.overlap_param_gather
    assert row_of(jean_zay | {"parallel": jean_zay["parallel"] | {"pp": 1}}).training.overlap_grad_reduce
    stated = row_of(_entry() | {"notes": 'Table "A100 80GB with 1600 Gbps node-node interconnect (RoCE)"'})
    assert stated.hardware.inter_node_bandwidth_bytes_per_s == 1600e9 / 8 / stated.hardware.gpus_per_node


def _deepseek_v3_columns(**changes):
    """The model columns of the Megatron-Bridge 25.11 DeepSeek-V3 rows of the calibration data:
    nothing about latent attention or the dense first layers but the name."""
    return {
        "name": "DeepSeek-V3-671B",
        "layers": 61,
        "hidden": 7168,
        "heads": 128,
        "kv_heads": None,
        "ffn_hidden": 18432,
        "vocab": 129280,
        "seq_len": 4096,
        "activation": "swiglu",
        "moe": {"experts": 256, "top_k": 8, "moe_ffn_hidden": 2048, "shared_experts": 1},
    } | changes


def test_rows_of_a_bundled_model_take_its_whole_architecture():
    """DeepSeek-V3's config.json (deepseek-ai/DeepSeek-V3 on the Hugging Face hub): q_lora_rank 1536,
    kv_lora_rank 512, qk_nope_head_dim 128, qk_rope_head_dim 64, v_head_dim 128,
    first_k_dense_replace 3; Qwen3-235B-A22B's (Qwen/Qwen3-235B-A22B): head_dim 128 on a 4096-wide
    model with 64 heads."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from published import model_of

    deepseek = model_of(_deepseek_v3_columns())
    assert deepseek.mla_shape == (1536, 512, 128, 64, 128)
    assert deepseek.num_dense_layers == 3 and deepseek.name == "DeepSeek-V3-671B"
    qwen = model_of(
        {
            "name": "Qwen3-235B-A22B",
            "layers": 94,
            "hidden": 4096,
            "heads": 64,
            "kv_heads": 4,
            "ffn_hidden": 12288,
            "vocab": 151936,
            "seq_len": 4096,
            "activation": "swiglu",
            "moe": {"experts": 128, "top_k": 8, "moe_ffn_hidden": 1536, "shared_experts": 0},
        }
    )
    assert qwen.head_dim == 128 and qwen.qk_norm
    # a column that disagrees with every bundled model: the row is built from its columns alone
    other = model_of(_deepseek_v3_columns(layers=60))
    assert not other.is_mla and other.head_dim == 7168 // 128 and other.num_layers == 60


def test_published_layouts_whose_layers_do_not_divide_take_megatrons_uneven_split():
    """The Llama 3 paper (Dubey et al. 2024, section 3.3.2) trained 405B's 126 layers on pp 16 by
    removing one layer from each of the first and last stages: 7, 8 x 14, 7."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from planner.io import load_model

    from published import stage_split

    llama = load_model("llama3.1-405b")
    assert stage_split(llama, 16, 1) == (7, 7)
    assert stage_split(llama, 2, 1) == (0, 0)  # 63 each: the even split
    with pytest.raises(ValueError, match="61 layers do not split over pp 2 with vpp 4"):
        stage_split(load_model("deepseek-v3"), 2, 4)


def test_an_unstated_recompute_is_the_least_that_fits_within_the_runs_memory():
    """The GB200 Llama 3 70B FP8 row on tp 2, pp 4 does not fit without recompute; the inferred
    choice fits, recomputes less than every layer, and a stated peak memory bounds it."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from planner.evaluate import memory
    from planner.performance import model_recomputed_share, step_flops_per_token

    from published import row_of

    def recomputed_flops(row):
        c = row.config
        share = model_recomputed_share(row.model, c)
        return step_flops_per_token(row.model, 8192, c.recompute, share, c.recompute_modules).hardware

    layout = {"tp": 2, "pp": 4}
    plain = row_of(_entry(recompute="none", **layout))
    assert not memory(plain.model, plain.hardware, plain.training, plain.config).fits
    full = row_of(_entry(recompute="full", **layout))
    inferred = row_of(_entry(**layout))
    assert inferred.recompute_inferred
    assert memory(inferred.model, inferred.hardware, inferred.training, inferred.config).fits
    assert recomputed_flops(plain) < recomputed_flops(inferred) < recomputed_flops(full)
    held = memory(inferred.model, inferred.hardware, inferred.training, inferred.config)
    tight = _entry(**layout)
    tight["measured"] = tight["measured"] | {"peak_mem_gb": (held.total - held.reserve) / 1e9 * 0.95}
    bounded = row_of(tight)
    mem = memory(bounded.model, bounded.hardware, bounded.training, bounded.config)
    assert recomputed_flops(bounded) > recomputed_flops(inferred)
    assert mem.total - mem.reserve <= held.total - held.reserve
