"""The launch files start exactly ``--gpus`` ranks (issue 10 item 6): every script runs once per node
with a stub ``torchrun`` that records its argv, and the ranks are what torchrun would start, the
sum of each node's ``--nproc-per-node`` over the ``--nnodes`` node ranks (torch.distributed.elastic
numbers global ranks by that running sum, ``SimpleElasticAgent._assign_worker_ranks``). SLURM's
``srun`` is a stub that runs its command once per node of the ``#SBATCH --nodes`` allocation."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from golden_cases import CASES, TORCHTITAN_CASES, plan_case

from planner.cli import main

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")
MAX_NODES = 16  # cases on more nodes are left to test_launch_scripts (node 0 only)

TORCHRUN = """#!/usr/bin/env bash
n=$(ls "$RECORD" | wc -l)
printf '%s\\0' "$@" > "$RECORD/$n"
"""
# srun runs its command (from "bash" on) once per node of the allocation, as SLURM would.
SRUN = """#!/usr/bin/env bash
while [[ $# -gt 0 && "$1" != bash ]]; do shift; done
for ((id = 0; id < SLURM_JOB_NUM_NODES; id++)); do
  (SLURM_NODEID=$id "$@") || exit 1
done
"""
SCONTROL = """#!/usr/bin/env bash
printf 'node-a\\nnode-b\\n'
"""


@pytest.fixture
def stubs(tmp_path):
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    record.mkdir()
    for name, text in (("torchrun", TORCHRUN), ("srun", SRUN), ("scontrol", SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir, record


def recorded(record: Path) -> list[list[str]]:
    calls = sorted(record.iterdir(), key=lambda p: int(p.name))
    argvs = [p.read_text().split("\0")[:-1] for p in calls]
    for p in calls:
        p.unlink()
    return argvs


def run(path: Path, stubs, **env: str) -> None:
    bin_dir, record = stubs
    environment = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(path.parent),
        "RECORD": str(record),
        "MASTER_ADDR": "10.0.0.1",
    }
    done = subprocess.run(
        [BASH, str(path)], env=environment | env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def value(argv: list[str], flag: str) -> int:
    return int(argv[argv.index(flag) + 1])


def ranks_of(argvs: list[list[str]]) -> int:
    """Ranks torchrun starts from one call per node: the node ranks cover 0..nnodes-1 once each,
    and the processes add up."""
    nnodes = {value(a, "--nnodes") for a in argvs}
    assert len(nnodes) == 1, nnodes
    assert sorted(value(a, "--node-rank") for a in argvs) == list(range(nnodes.pop()))
    return sum(value(a, "--nproc-per-node") for a in argvs)


def ranks_started(script: Path, stubs, nodes: int) -> int:
    """Run ``script`` (a torchrun launcher) on every node as a user would, ``NODE_RANK`` set."""
    argvs = []
    for node in range(nodes):
        run(script, stubs, NODE_RANK=str(node))
        argvs += recorded(stubs[1])
    return ranks_of(argvs)


def sbatch_ranks(script: Path, stubs, folder: Path) -> int:
    """Run a SLURM batch script on the allocation its ``#SBATCH --nodes`` asks for."""
    nodes = re.search(r"^#SBATCH --nodes=(\d+)$", script.read_text(), re.M)
    assert nodes, "no #SBATCH --nodes"
    run(
        script,
        stubs,
        SLURM_JOB_NUM_NODES=nodes.group(1),
        SLURM_JOB_NODELIST="node-[a-b]",
        SLURM_SUBMIT_DIR=str(folder),
    )
    return ranks_of(recorded(stubs[1]))


def write(files: dict[str, str], folder: Path) -> dict[str, Path]:
    paths = {}
    for name, text in files.items():
        paths[name] = folder / name
        paths[name].write_text(text)
    return paths


def small(cases: list[dict]) -> list[dict]:
    return [c for c in cases if -(-c["gpus"] // 8) <= MAX_NODES]


@pytest.mark.parametrize(
    "case", small(CASES + TORCHTITAN_CASES), ids=lambda c: f"{c['model']}-{c['gpus']}-{c['tp']}-{c['pp']}"
)
def test_every_launcher_starts_exactly_the_plans_gpus(case, tmp_path, stubs):
    files = write(plan_case(case)["files"], tmp_path)
    nodes = -(-case["gpus"] // 8)
    launchers = [n for n in ("megatron.sh", "deepspeed.sh", "torchtitan.sh") if n in files]
    for name in launchers:
        assert ranks_started(files[name], stubs, nodes) == case["gpus"], name
    for name in ("slurm.sbatch", "torchtitan.sbatch"):
        if name in files:
            assert sbatch_ranks(files[name], stubs, tmp_path) == case["gpus"], name


def test_the_issues_100_gpus_launch_100_ranks_with_a_tp_that_divides_the_node(tmp_path, stubs):
    """`plan --gpus 100 llama2-13b -o out` (issue 10): 13 nodes, the last running 4 processes."""
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["--gpus", "100", "llama2-13b", "--format", "yaml", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    tp = int(re.search(r"^  tp: (\d+)$", (out / "plan.yaml").read_text(), re.M).group(1))
    assert 8 % tp == 0 and 13824 % tp == 0  # the node's GPUs and llama2-13b's FFN width (its config)
    assert ranks_started(out / "megatron.sh", stubs, 13) == 100
    assert sbatch_ranks(out / "slurm.sbatch", stubs, out) == 100
    assert "its other 4 GPUs stay idle" in (out / "slurm.sbatch").read_text()


@pytest.mark.parametrize("gpus", [4, 12, 20, 100])
def test_deepspeed_launch_starts_exactly_the_plans_gpus(gpus, tmp_path, stubs):
    out = tmp_path / "out"
    args = ["--gpus", str(gpus), "--framework", "deepspeed", "--pp", "1", "llama2-7b", "-o", str(out)]
    result = CliRunner().invoke(main, [*args, "--format", "yaml"])
    assert result.exit_code == 0, result.output
    assert ranks_started(out / "deepspeed.sh", stubs, -(-gpus // 8)) == gpus
