"""The ``plan`` console script (``planner.cli.entry``) ends the process without the interpreter's
teardown: what it prints and writes, and its exit status, must be those of ``main``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "import sys; from planner.cli import entry; sys.argv[0] = 'plan'; entry()"


def plan(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_a_plan_prints_all_of_its_document_and_exits_0():
    done = plan("--gpus", "8", "llama2-7b", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "optimal"


def test_nothing_fits_exits_1_and_bad_input_2_with_one_error_line():
    done = plan("--gpus", "8", "llama3.1-405b", "--format", "json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "infeasible"
    bad = plan("--gpus", "0", "llama2-7b")
    assert bad.returncode == 2
    assert bad.stdout == "" and bad.stderr.startswith("Error: ") and bad.stderr.count("\n") == 1


def test_the_files_it_writes_are_whole(tmp_path):
    done = plan("--gpus", "16", "llama2-7b", "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load((tmp_path / "out" / "plan.yaml").read_text())
    assert written["status"] == "optimal"
    assert (tmp_path / "out" / "megatron.sh").read_text().endswith("\n")
