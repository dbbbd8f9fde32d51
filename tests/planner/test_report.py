"""The HTML report: self-contained (no script, nothing fetched), escaped, carrying the plan's
numbers, and rendered by a real headless Chromium without console errors (skipped where Chromium
is not installed: ``apt-get install chromium``)."""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from planner.cli import main
from planner.known_accuracy import DENSE, MOE
from planner.report import layout_text

from conftest import ROOT

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
README_SWEEP = next(
    line.strip("`")
    for line in (ROOT / "README.md").read_text().splitlines()
    if line.startswith("`plan sweep llama3-70b") and "--chart examples/" in line
)


def invoke(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def assert_self_contained(page: str) -> None:
    """No script, no stylesheet or image to fetch: the only URL is the SVG namespace."""
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=""", page, re.IGNORECASE)
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls


def test_plan_report_carries_the_plan(tmp_path):
    page_path = tmp_path / "plan.html"
    doc = yaml.safe_load(
        invoke(
            [
                "--gpus",
                "64",
                "--mem",
                "80GB",
                "llama2-13b",
                "--storage-gbps",
                "20",
                "--report",
                str(page_path),
            ]
        )
    )
    page = page_path.read_text()
    assert_self_contained(page)
    p = doc["parallelism"]
    assert f"<b>{layout_text(p)}</b>" in page and f"dp={p['dp']}" in layout_text(p)
    assert page.count("runner-up") >= 2 and "what it costs" in page  # runners-up even without --top
    assert f"capacity {doc['memory_gib']['capacity']:.1f} GiB" in page
    for term in ("weights", "gradients", "optimizer", "activations", "reserve", "compute", "dp_comm"):
        assert f">{term}<" in page
    assert f"{doc['checkpoint']['full_gib']:,.1f} GiB per checkpoint" in page
    assert f"median error <b>{DENSE.median_abs_error:.0%}</b>" in page  # the dense calibration set's figure


def test_plan_report_of_an_moe_model_quotes_the_moe_accuracy(tmp_path):
    invoke(["--gpus", "64", "mixtral-8x7b", "--report", str(tmp_path / "moe.html")])
    moe = f"mixture-of-experts entries, n={MOE.num_entries}): median error <b>{MOE.median_abs_error:.0%}</b>"
    assert moe in (tmp_path / "moe.html").read_text()


def test_names_are_escaped(tmp_path):
    model = tmp_path / "a<i>x.yaml"
    model.write_text((ROOT / "examples" / "llama3.2-1b.yaml").read_text())
    invoke(["--gpus", "8", str(model), "--report", str(tmp_path / "r.html")])
    page = (tmp_path / "r.html").read_text()
    assert "a&lt;i&gt;x" in page and "a<i>x" not in page


def test_same_input_same_page(tmp_path):
    for name in ("a.html", "b.html"):
        invoke(["--gpus", "16", "llama3-8b", "--report", str(tmp_path / name)])
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()


def test_a_report_that_cannot_be_written_fails_first(tmp_path):
    result = CliRunner().invoke(main, ["--gpus", "8", "llama3-8b", "--report", str(tmp_path)])
    assert result.exit_code == 2 and "--report" in result.output and "Traceback" not in result.output


def sweep_page(tmp_path: Path) -> Path:
    """The README's sweep, with its report."""
    args = shlex.split(README_SWEEP)[1:]
    chart = args.index("--chart")
    args[chart : chart + 2] = ["--report", str(tmp_path / "sweep.html")]
    invoke(args)
    return tmp_path / "sweep.html"


@pytest.fixture(scope="module")
def readme_sweep(tmp_path_factory) -> Path:
    return sweep_page(tmp_path_factory.mktemp("sweep"))


def test_sweep_report_carries_the_sweep(readme_sweep):
    page = readme_sweep.read_text()
    assert_self_contained(page)
    assert "Smallest GPU count that trains on a100-80gb at seq 8192" in page
    assert "a100-80gb ($1.80/GPU-h)" in page and "h100-80gb ($3.20/GPU-h)" in page  # the cost chart
    assert "Cheapest:" in page and "Fastest:" in page
    assert page.count("<svg") == 4  # throughput, days, cost, scaling efficiency
    assert "tokens/s per GPU against a100-80gb x 64 at seq 8192" in page


def render_in_chromium(page: Path, shot: Path) -> list[str]:
    """Screenshot ``page`` in headless Chromium with the network off (every host unresolvable);
    the console messages, script errors and failed loads it logged."""
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1100,3900",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return [
        line for line in result.stderr.splitlines() if any(k in line for k in ("CONSOLE", "Uncaught", "ERR_"))
    ]


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")


@needs_chromium
def test_the_console_check_catches_a_broken_page(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><body><script>console.error('boom'); missing();</script></body></html>"
    )
    messages = render_in_chromium(page, tmp_path / "bad.png")
    assert any("boom" in m for m in messages) and any("Uncaught" in m for m in messages)


@needs_chromium
def test_sweep_report_renders_in_headless_chromium_without_console_errors(readme_sweep, tmp_path):
    """The README's sweep page; the committed examples/sweep-llama3-70b-report.png is this screenshot."""
    shot = tmp_path / "sweep.png"
    assert render_in_chromium(readme_sweep, shot) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
