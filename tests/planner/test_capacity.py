"""Capacity planning: sweeps, the smallest GPU count, costs, plan diffs, and their CLI."""

import csv
import json

import pytest
import yaml
from click.testing import CliRunner

from planner.capacity import (
    candidate_counts,
    compare,
    min_gpus,
    parse_gpu_counts,
    parse_tokens,
    training_cost,
)
from planner.cli import main
from planner.errors import PlannerError
from planner.hardware import preset
from planner.io import load_model
from planner.plan import Request, fits_anywhere
from planner.specs import TrainingSpec


def test_gpu_count_forms():
    assert parse_gpu_counts("8..64") == [8, 16, 32, 64]
    assert parse_gpu_counts("8..32x8") == [8, 16, 24, 32]
    assert parse_gpu_counts("48,8,16") == [8, 16, 48]
    for bad in ("0..8", "64..8", "a,b", "8..x"):
        with pytest.raises(PlannerError, match="--gpus"):
            parse_gpu_counts(bad)


def test_token_budgets():
    assert parse_tokens("2T") == 2e12 and parse_tokens("300B") == 3e11 and parse_tokens("1.5e12") == 1.5e12
    with pytest.raises(PlannerError, match="--tokens"):
        parse_tokens("lots")


def test_days_and_gpu_hours():
    cost = training_cost(tokens_per_s=1e6, gpus=1000, tokens=8.64e10, price=2.0)
    assert cost["days"] == pytest.approx(1.0) and cost["gpu_hours"] == pytest.approx(24_000)
    assert cost["cost"] == pytest.approx(48_000)


@pytest.mark.parametrize(
    "name, gpu, mem",
    [("llama3-70b", "a100-80gb", None), ("llama2-13b", "h100-80gb", 40e9), ("llama3-8b", "a100-40gb", None)],
)
def test_min_gpus_is_the_first_count_that_fits(name, gpu, mem):
    from dataclasses import replace

    hardware = preset(gpu) if mem is None else replace(preset(gpu), memory_bytes=mem)
    req = Request(
        model=load_model(name),
        hardware=hardware,
        training=TrainingSpec(seq_len=4096, global_batch_size=512),
        gpus=8,
    )
    found = min_gpus(req)
    assert found.gpus is not None and found.lower_bound <= found.gpus
    assert fits_anywhere(req, found.gpus)
    below = [n for n in candidate_counts(1, hardware.gpus_per_node) if n < found.gpus]
    assert not any(fits_anywhere(req, n) for n in below if n >= found.lower_bound)
    assert found.checked[-1] == found.gpus


def test_compare_reports_term_deltas(tmp_path):
    runner = CliRunner()
    for name, extra in (("a", []), ("b", ["--zero", "3"])):
        result = runner.invoke(
            main, ["--gpus", "64", "llama2-13b", "--format", "yaml", "-o", str(tmp_path / name), *extra]
        )
        assert result.exit_code == 0, result.output
    a = yaml.safe_load((tmp_path / "a" / "plan.yaml").read_text())
    b = yaml.safe_load((tmp_path / "b" / "plan.yaml").read_text())
    rows = {(r["section"], r["term"]): r for r in compare(a, b)}
    total = rows[("memory_gib", "total")]
    assert total["delta"] == pytest.approx(b["memory_gib"]["total"] - a["memory_gib"]["total"])
    assert rows[("parallelism", "zero_stage")]["b"] == 3
    assert ("performance.breakdown", "dp_comm") in rows
    shown = runner.invoke(
        main, ["compare", str(tmp_path / "a" / "plan.yaml"), str(tmp_path / "b" / "plan.yaml")]
    )
    assert shown.exit_code == 0 and "zero_stage" in shown.output and "dp_comm" in shown.output


def test_sweep_csv_json_and_chart(tmp_path):
    runner = CliRunner()
    args = [
        "sweep",
        "llama3-8b",
        "--gpus",
        "8..32",
        "--gpu",
        "a100-80gb",
        "--gpu",
        "h100-80gb",
        "--tokens",
        "1T",
        "--price-per-gpu-hour",
        "2",
    ]
    as_json = json.loads(runner.invoke(main, [*args, "--format", "json"]).stdout)
    rows = as_json["rows"]
    assert [(r["gpu"], r["gpus"]) for r in rows] == [
        (g, n) for g in ("a100-80gb", "h100-80gb") for n in (8, 16, 32)
    ]
    for r in rows:
        assert r["days"] == pytest.approx(1e12 / r["tokens_per_s"] / 86400)
        assert r["cost"] == pytest.approx(r["gpu_hours"] * 2)
    h100 = {r["gpus"]: r for r in rows if r["gpu"] == "h100-80gb"}
    a100 = {r["gpus"]: r for r in rows if r["gpu"] == "a100-80gb"}
    assert all(h100[n]["tokens_per_s"] > a100[n]["tokens_per_s"] for n in h100)
    assert {(m["gpu"], m["seq_len"]) for m in as_json["min_gpus"]} == {
        ("a100-80gb", 8192),
        ("h100-80gb", 8192),
    }
    as_csv = runner.invoke(main, [*args, "--format", "csv"]).stdout.splitlines()
    assert as_csv[0].startswith("gpu,seq_len,gpus,status") and len(as_csv) == 7
    for line, row in zip(csv.DictReader(as_csv), rows, strict=True):  # CSV is exact, as JSON
        for key in ("tokens_per_s", "mfu", "step_time_s", "days", "gpu_hours", "cost"):
            assert float(line[key]) == row[key]
    chart = tmp_path / "sweep.png"
    result = runner.invoke(main, [*args, "--chart", str(chart)])
    assert result.exit_code == 0, result.output
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 20_000


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["sweep", "llama3-8b", "--gpus", "64..8"], "--gpus '64..8'"),
        (["sweep", "llama3-8b", "--tokens", "many"], "--tokens"),
        (["sweep", "llama3-8b", "--gpu", "tpu"], "unknown preset"),
        (["compare", "/nonexistent/a.yaml", "/nonexistent/b.yaml"], "cannot read"),
        (["serve", "llama3-8b", "--context", "lots"], "--context"),
        (["serve", "llama3-8b", "--tp", "3"], "--tp 3"),
        (["serve", "llama3-8b", "--batch", "0"], "--batch must be a positive integer"),
        (["serve", "llama3-8b", "--context", "1k", "--generate", "2048"], "must exceed --generate"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, fragment):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output and result.output.startswith("Error: ")
    assert "Traceback" not in result.output and result.output.strip().count("\n") == 0


def test_serve_cli_answers_for_llama3_70b_at_32k():
    result = CliRunner().invoke(
        main,
        ["serve", "llama3-70b", "--gpu", "h100-80gb", "--context", "32k", "--batch", "8", "--format", "json"],
    )
    doc = json.loads(result.stdout)
    assert result.exit_code == 0 and doc["status"] == "fits"
    assert doc["serving"]["context"] == 32768 and doc["min_tp"] == doc["serving"]["tp"]
    # KV cache: 2 * 2 B * 8 * 32768 * (8 KV heads / tp) * 128 * 80 layers
    kv = 2 * 2 * 8 * 32768 * (8 // doc["serving"]["tp"]) * 128 * 80
    assert doc["memory_gib"]["kv_cache"] == pytest.approx(kv / 2**30, abs=1e-3)
    assert doc["max_batch_at_this_context"] >= 8
    too_big = CliRunner().invoke(
        main, ["serve", "llama3-70b", "--context", "32k", "--batch", "512", "--tp", "2"]
    )
    assert too_big.exit_code == 1


def test_sweep_over_sequence_lengths():
    result = CliRunner().invoke(
        main, ["sweep", "llama3-8b", "--gpus", "8,16", "--seq-len", "2048,8192", "--format", "json"]
    )
    doc = json.loads(result.stdout)
    assert [(r["seq_len"], r["gpus"]) for r in doc["rows"]] == [(2048, 8), (2048, 16), (8192, 8), (8192, 16)]
    assert [m["seq_len"] for m in doc["min_gpus"]] == [2048, 8192]
    assert all(m["gpus"] >= m["lower_bound"] for m in doc["min_gpus"])
    bad = CliRunner().invoke(main, ["sweep", "llama3-8b", "--seq-len", "2k"])
    assert bad.exit_code == 2 and "--seq-len" in bad.output


SWEEP = ["sweep", "llama3-8b", "--gpus", "8,16", "--gpu", "a100-80gb", "--gpu", "h100-80gb", "--tokens", "1T"]


def test_prices_per_gpu_type(tmp_path):
    """--price NAME=P per type, a prices file, and --price-per-gpu-hour for the types not named."""
    runner = CliRunner()
    named = json.loads(
        runner.invoke(
            main, [*SWEEP, "--price", "a100-80gb=1.8", "--price", "h100-80gb=3.2", "--format", "json"]
        ).stdout
    )["rows"]
    assert {r["gpu"]: r["price_per_gpu_hour"] for r in named} == {"a100-80gb": 1.8, "h100-80gb": 3.2}
    assert all(r["cost"] == pytest.approx(r["gpu_hours"] * r["price_per_gpu_hour"]) for r in named)
    prices = tmp_path / "prices.yaml"
    prices.write_text("h100-80gb: 3.2\n")
    mixed = json.loads(
        runner.invoke(
            main, [*SWEEP, "--price", str(prices), "--price-per-gpu-hour", "1.5", "--format", "json"]
        ).stdout
    )["rows"]
    assert {r["gpu"]: r["price_per_gpu_hour"] for r in mixed} == {"a100-80gb": 1.5, "h100-80gb": 3.2}
    for bad, fragment in (("h100-80gb=cheap", "NAME=PRICE"), ("h100-80gb=-1", "zero or more")):
        result = runner.invoke(main, [*SWEEP, "--price", bad])
        assert result.exit_code == 2 and fragment in result.output and "Traceback" not in result.output


def test_scaling_efficiency_has_one_common_baseline():
    """Per-type baselines make the slower GPU look like it scales better; one baseline does not."""
    doc = json.loads(CliRunner().invoke(main, [*SWEEP, "--format", "json"]).stdout)
    rows, [base] = doc["rows"], doc["scaling_baseline"]
    assert base == {"gpu": "a100-80gb", "gpus": 8, "seq_len": 8192}
    per_gpu = {(r["gpu"], r["gpus"]): r["tokens_per_s"] / r["gpus"] for r in rows}
    for r in rows:
        assert r["scaling_efficiency"] == pytest.approx(
            per_gpu[(r["gpu"], r["gpus"])] / per_gpu[("a100-80gb", 8)]
        )
    assert all(r["scaling_efficiency"] > 1 for r in rows if r["gpu"] == "h100-80gb")
    text = CliRunner().invoke(main, SWEEP).stdout
    assert "relative to a100-80gb x 8 GPUs at seq 8192" in text


def test_markdown_rounds_for_people_and_csv_stays_exact():
    runner = CliRunner()
    exact = json.loads(runner.invoke(main, [*SWEEP, "--format", "json"]).stdout)["rows"]
    lines = runner.invoke(main, [*SWEEP, "--format", "markdown"]).stdout.splitlines()
    header, rule, *body = lines[: 2 + len(exact)]
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert rule.startswith("| ---") and len(rule.split("|")) == len(header.split("|"))
    first = dict(zip(columns, [c.strip() for c in body[0].strip("|").split("|")], strict=True))
    assert first["mfu"] == f"{exact[0]['mfu']:.1%}"
    assert len(first["tokens_per_s"].replace(",", "").rstrip("0")) <= 3  # three significant figures
    csv_rows = runner.invoke(main, [*SWEEP, "--format", "csv"]).stdout.splitlines()
    values = dict(zip(csv_rows[0].split(","), csv_rows[1].split(","), strict=True))
    assert float(values["tokens_per_s"]) == exact[0]["tokens_per_s"]


def test_compare_as_markdown(tmp_path):
    runner = CliRunner()
    for name, zero in (("a", "1"), ("b", "3")):
        runner.invoke(main, ["--gpus", "64", "--zero", zero, "llama2-13b", "-o", str(tmp_path / name)])
    result = runner.invoke(
        main,
        [
            "compare",
            str(tmp_path / "a" / "plan.yaml"),
            str(tmp_path / "b" / "plan.yaml"),
            "--format",
            "markdown",
        ],
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "|  | section | term | A | B | B - A | B / A |" and lines[1].startswith(
        "| --- | --- | --- | ---:"
    )
    assert any("| zero_stage | 1 | 3 |" in line for line in lines)
