"""The launch scripts run: each golden case's megatron.sh, slurm.sbatch and deepspeed.sh start with
stub ``torchrun``, ``srun`` and ``scontrol`` on PATH that record their argv, and the recorded
commands are the arguments Megatron-LM's parser validated (tests/fixtures/megatron_arguments.json)."""

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from golden_cases import CASES, plan_case

from planner.emit_megatron import user_data_args

from conftest import fixture

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")
MEGATRON = fixture("megatron_arguments.json")

# Each stub appends its argv (NUL-separated, one file per call) under $RECORD.
RECORDER = """#!/usr/bin/env bash
n=$(ls "$RECORD" | wc -l)
printf '%s\\0' "$(basename "$0")" "$@" > "$RECORD/$n"
"""
# srun records, then runs its command (from "bash" on) as node 0 of the allocation.
SRUN = (
    RECORDER
    + """while [[ $# -gt 0 && "$1" != bash ]]; do shift; done
SLURM_NODEID=0 exec "$@"
"""
)
SCONTROL = """#!/usr/bin/env bash
printf 'node-a\\nnode-b\\n'
"""
MEGATRON_VALUES = ["DATA_PATH", "TOKENIZER_MODEL", "CHECKPOINT_DIR", "SAVE_INTERVAL", "TRAIN_ITERS"]
MEGATRON_VALUES += ["LOG_INTERVAL", "EVAL_INTERVAL", "EVAL_ITERS", "OVERLAP_GRAD_REDUCE"]
MEGATRON_VALUES += ["CROSS_ENTROPY_FUSION", "MEGATRON", "NNODES", "MASTER_PORT"]
SLURM_VALUES = ["--time=", "--output=", "--partition=", "--account=", "CONTAINER_IMAGE", "CONTAINER_MOUNTS"]


@pytest.fixture
def stubs(tmp_path):
    """A PATH whose torchrun, srun and scontrol are stubs, and the folder they record into."""
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    record.mkdir()
    for name, text in (("torchrun", RECORDER), ("srun", SRUN), ("scontrol", SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir, record


def run_script(path: Path, stubs, **env: str) -> list[list[str]]:
    """Run ``path`` with the stubs first on PATH; the recorded commands, in order."""
    bin_dir, record = stubs
    for old in record.iterdir():
        old.unlink()
    environment = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(path.parent), "RECORD": str(record)}
    result = subprocess.run(
        [BASH, str(path)], env=environment | env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    calls = sorted(record.iterdir(), key=lambda p: int(p.name))
    return [p.read_text().split("\0")[:-1] for p in calls]


def write_files(case: dict, folder: Path) -> dict[str, Path]:
    plan = plan_case(case)
    paths = {}
    for name, text in plan["files"].items():
        paths[name] = folder / name
        paths[name].write_text(text)
    return paths


def after(argv: list[str], marker: str) -> list[str]:
    """The arguments following the first one that ends with ``marker``."""
    index = next(i for i, a in enumerate(argv) if a.endswith(marker))
    return argv[index + 1 :]


@pytest.mark.parametrize(
    "reference", MEGATRON["cases"], ids=lambda c: f"{c['model']}-{c['gpus']}-{c.get('tp')}-{c.get('zero')}"
)
def test_golden_launch_scripts_start_with_the_validated_arguments(reference, tmp_path, stubs):
    """Regenerate tests/fixtures/megatron_arguments.json when the arguments change on purpose."""
    case = reference
    files = write_files(case, tmp_path)
    if not reference["expressible"]:
        assert not {"megatron.sh", "megatron_args.txt", "slurm.sbatch"} & set(files)
        return
    script = files["megatron.sh"].read_text()
    # a switch the plan turned off (--no-overlap-grad-reduce) has no variable to turn it back on
    values = [
        v for v in MEGATRON_VALUES if v != "OVERLAP_GRAD_REDUCE" or "--overlap-grad-reduce" in case["args"]
    ]
    assert all(f"\n{name}=${{{name}" in script for name in values), script[:2000]
    nodes = -(-case["gpus"] // 8)

    # defaults: exactly the arguments Megatron-LM accepted, on the plan's nodes
    [torchrun] = run_script(files["megatron.sh"], stubs, MASTER_ADDR="10.0.0.1")
    assert after(torchrun, "pretrain_gpt.py") == reference["args"]
    assert reference["args"] == shlex.split(files["megatron_args.txt"].read_text())
    assert torchrun[torchrun.index("--nnodes") + 1] == str(nodes)
    assert torchrun[torchrun.index("--master-addr") + 1] == "10.0.0.1"

    # the user's data and tokenizer: the variant Megatron-LM also accepted
    data = MEGATRON["user_data"]
    [torchrun] = run_script(files["megatron.sh"], stubs, MASTER_ADDR="10.0.0.1", **data)
    assert reference["accepted_with_data"]
    assert after(torchrun, "pretrain_gpt.py") == user_data_args(
        reference["args"], data["DATA_PATH"], data["TOKENIZER_MODEL"]
    )

    # overlap switched off, checkpoints elsewhere
    [torchrun] = run_script(
        files["megatron.sh"],
        stubs,
        MASTER_ADDR="10.0.0.1",
        OVERLAP_GRAD_REDUCE="",
        OVERLAP_PARAM_GATHER="",
        CHECKPOINT_DIR="/lustre/a b",
    )
    args = after(torchrun, "pretrain_gpt.py")
    assert "--overlap-grad-reduce" not in args and "--overlap-param-gather" not in args
    assert args[args.index("--save") + 1] == "/lustre/a b" == args[args.index("--load") + 1]

    # SLURM: one srun over the allocation, MASTER_ADDR its first node, then megatron.sh as node 0
    sbatch = files["slurm.sbatch"].read_text()
    assert all(v in sbatch for v in SLURM_VALUES)
    assert f"#SBATCH --nodes={nodes}\n" in sbatch
    slurm_env = {"SLURM_JOB_NODELIST": "node-[a-b]", "SLURM_SUBMIT_DIR": str(tmp_path)}
    srun, torchrun = run_script(files["slurm.sbatch"], stubs, CONTAINER_IMAGE="nvcr.io/x:1", **slurm_env)
    assert srun[srun.index("--container-image") + 1] == "nvcr.io/x:1"
    assert torchrun[torchrun.index("--master-addr") + 1] == "node-a"
    assert torchrun[torchrun.index("--node-rank") + 1] == "0"
    assert after(torchrun, "pretrain_gpt.py") == reference["args"]


def test_several_nodes_without_an_allocation_need_master_addr(tmp_path, stubs):
    files = write_files(CASES[0], tmp_path)  # 32 GPUs: 4 nodes
    bin_dir, record = stubs
    result = subprocess.run(
        [BASH, str(files["megatron.sh"])],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "RECORD": str(record)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and "set MASTER_ADDR" in result.stderr
    assert not list(record.iterdir()), "torchrun must not start"


def test_one_node_runs_on_localhost(tmp_path, stubs):
    case = next(c for c in CASES if c["gpus"] == 8 and c["model"] == "llama3.2-1b")
    files = write_files(case, tmp_path)
    [torchrun] = run_script(files["megatron.sh"], stubs)
    assert torchrun[torchrun.index("--master-addr") + 1] == "localhost"


def test_deepspeed_script_starts_the_program_with_the_config(tmp_path, stubs):
    case = next(c for c in CASES if c["model"] == "llama2-7b" and c["gpus"] == 8)
    plan = plan_case(case)
    files = write_files(case, tmp_path)
    assert plan["deepspeed"].expressible and "deepspeed.sh" in files
    [torchrun] = run_script(files["deepspeed.sh"], stubs, TRAIN_PROGRAM="my train.py")
    assert after(torchrun, "my train.py") == [
        "--deepspeed",
        "--deepspeed_config",
        f"{tmp_path}/deepspeed.json",
    ]
    assert torchrun[torchrun.index("--nproc-per-node") + 1] == "8"
