"""The Python API returns the documents the CLI prints, and raises PlannerError for bad input."""

import json
import re

import pytest
from click.testing import CliRunner

from planner.api import PlannerError, plan, serve, sweep
from planner.cli import main

from conftest import ROOT


def cli_json(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_plan_and_serve_equal_the_cli_documents():
    assert plan("llama2-13b", gpus=64, mem="80GB", top=2) == cli_json(
        "--gpus", 64, "--mem", "80GB", "--top", 2, "llama2-13b", "--format", "json"
    )
    assert plan("llama3-8b", gpus=72, tp=1) == cli_json(
        "--gpus", 72, "--tp", 1, "llama3-8b", "--format", "json"
    )
    assert serve("llama3-70b", context=32768, batch=8) == cli_json(
        "serve", "llama3-70b", "--context", "32k", "--batch", 8, "--format", "json"
    )


def test_sweep_equals_the_cli_document():
    cli = cli_json(
        "sweep",
        "llama3-8b",
        "--gpus",
        "8,16",
        "--gpu",
        "a100-80gb",
        "--gpu",
        "h100-80gb",
        "--tokens",
        "1T",
        "--price",
        "h100-80gb=3.2",
        "--price-per-gpu-hour",
        1.8,
        "--format",
        "json",
    )
    doc = sweep(
        "llama3-8b",
        "8,16",
        gpu=["a100-80gb", "h100-80gb"],
        tokens="1T",
        prices={"h100-80gb": 3.2},
        price_per_gpu_hour=1.8,
    )
    assert doc == cli
    assert [(r["gpu"], r["gpus"]) for r in doc["rows"]] == [
        ("a100-80gb", 8),
        ("a100-80gb", 16),
        ("h100-80gb", 8),
        ("h100-80gb", 16),
    ]
    assert {r["price_per_gpu_hour"] for r in doc["rows"] if "cost" in r} == {1.8, 3.2}


def test_bad_input_raises_the_one_line_error():
    with pytest.raises(PlannerError, match="gpus must be a positive integer") as error:
        plan("llama2-13b", gpus=0)
    assert error.value.exit_code == 2
    with pytest.raises(PlannerError, match="did you mean"):
        plan("llama-2-13b", gpus=8)
    with pytest.raises(PlannerError, match="unknown option"):
        plan("llama2-13b", gpus=8, tensor_parallel=2)
    with pytest.raises(PlannerError, match="--gpus"):
        sweep("llama2-13b", "8..4")


def test_the_readme_examples_run():
    """Every ``python`` block of the README's API section runs as written."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Python API") :]
    blocks = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_moe_pins_equal_the_cli_and_a_bad_dispatcher_is_named():
    pinned = {"tp": 2, "etp": 2, "ep": 4, "dispatcher": "flex"}
    options = ["--tp", 2, "--etp", 2, "--ep", 4, "--dispatcher", "flex"]
    assert plan("qwen3-30b-a3b", gpus=32, **pinned) == cli_json(
        "--gpus", 32, *options, "qwen3-30b-a3b", "--format", "json"
    )
    with pytest.raises(PlannerError, match="dispatcher must be one of alltoall, flex, got 'deepep'"):
        plan("qwen3-30b-a3b", gpus=32, dispatcher="deepep")
