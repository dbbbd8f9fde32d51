"""``plan -o DIR`` writes a set (issue 12 class 3): a reader of DIR sees one run's complete set or
none, and no file the current plan does not list; concurrent runs, a failure while writing and a
kill between files leave a whole set; files plan did not write are never deleted."""

import inspect
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from planner import fileset
from planner.cli import main
from planner.errors import PlannerError
from planner.fileset import check_output_dir, write_file_set

ROOT = Path(__file__).resolve().parents[2]


def a_set(run: str, names: list[str]) -> dict[str, str]:
    """A file set whose plan.yaml lists its files, every file naming its run."""
    plan = {"run": run, "launch": {"x": {"files": names}}}
    return {"plan.yaml": yaml.safe_dump(plan), **{n: f"{run}\n" for n in names}}


A_SET = inspect.getsource(a_set)  # the same helper in the writer processes


def snapshot(directory: Path) -> dict[str, str] | None:
    """Everything in ``directory``, read through one directory descriptor and kept only if that
    folder was still at the path when the reading ended (it was then there all along: a set
    swapped out is never swapped back), so a sample is what the path held at one instant."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    try:
        out = {}
        for name in os.listdir(fd):
            with open(os.open(name, os.O_RDONLY, dir_fd=fd)) as handle:
                out[name] = handle.read()
        now = os.stat(directory)
        return out if (now.st_ino, now.st_dev) == (os.fstat(fd).st_ino, os.fstat(fd).st_dev) else None
    except FileNotFoundError:  # swapped out, and being deleted, while read: no sample
        return None
    finally:
        os.close(fd)


def check_whole(files: dict[str, str]) -> None:
    """One run's complete set: plan.yaml's list and nothing else, all from the same run."""
    plan = yaml.safe_load(files["plan.yaml"])
    assert set(files) == {"plan.yaml", *plan["launch"]["x"]["files"]}, sorted(files)
    assert {text for name, text in files.items() if name != "plan.yaml"} <= {f"{plan['run']}\n"}


def test_stale_files_of_an_earlier_set_are_gone(tmp_path):
    out = tmp_path / "run"
    write_file_set(out, a_set("a", ["megatron.sh", "deepspeed.json"]), ["megatron.sh"])
    assert os.access(out / "megatron.sh", os.X_OK) and not os.access(out / "deepspeed.json", os.X_OK)
    write_file_set(out, a_set("b", ["megatron.sh"]))
    assert sorted(os.listdir(out)) == ["megatron.sh", "plan.yaml"]
    check_whole(snapshot(out))
    assert os.listdir(tmp_path) == ["run"]  # no staging folder left


def test_files_plan_did_not_write_are_never_deleted(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(PlannerError, match=r"-o .*run: holds files plan did not write \(notes.txt\)"):
        write_file_set(out, a_set("a", ["megatron.sh"]))
    assert os.listdir(out) == ["notes.txt"] and os.listdir(tmp_path) == ["run"]
    result = CliRunner().invoke(main, ["--gpus", "8", "llama3.2-1b", "-o", str(out)])
    assert result.exit_code == 2 and result.stdout == "" and "notes.txt" in result.stderr
    assert os.listdir(out) == ["notes.txt"]


def test_output_problems_are_found_before_the_plan(tmp_path):
    (tmp_path / "file").write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    for target, fragment in [
        (tmp_path / "file", "-o"),
        (tmp_path / "file" / "run", "is a file"),
        (tmp_path, "holds files plan did not write (file, locked)"),
        (".", "holds the current directory"),
    ] + ([] if os.geteuid() == 0 else [(locked / "run", "permission denied")]):
        result = CliRunner().invoke(main, ["--gpus", "8", "llama3.2-1b", "-o", str(target)])
        assert result.exit_code == 2 and result.stdout == "", result.output
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
        assert fragment in result.stderr, result.stderr
        assert ".tmp" not in result.stderr and ".plan-" not in result.stderr


def test_a_failure_writing_a_later_file_keeps_the_previous_set(tmp_path, monkeypatch):
    out = tmp_path / "run"
    write_file_set(out, a_set("a", ["megatron.sh", "slurm.sbatch"]))
    calls = []

    def failing(path, text, executable=False, option=None):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        Path(path).write_text(text)

    monkeypatch.setattr(fileset, "write_atomic", failing)
    with pytest.raises(PlannerError, match="No space left on device"):
        write_file_set(out, a_set("b", ["megatron.sh", "slurm.sbatch"]))
    files = snapshot(out)
    check_whole(files)
    assert yaml.safe_load(files["plan.yaml"])["run"] == "a" and os.listdir(tmp_path) == ["run"]


def test_a_write_failure_prints_no_plan(tmp_path, monkeypatch):
    """The files are written before the plan is printed: a failure is one line, stdout empty."""
    out = tmp_path / "run"
    assert CliRunner().invoke(main, ["--gpus", "8", "llama3.2-1b", "-o", str(out)]).exit_code == 0
    before = snapshot(out)

    def full_disk(path, text, executable=False, option=None):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(fileset, "write_atomic", full_disk)
    result = CliRunner().invoke(main, ["--gpus", "16", "llama3.2-1b", "-o", str(out)])
    assert result.exit_code == 2 and result.stdout == "", result.output
    assert result.stderr.count("\n") == 1 and f"-o {out}: cannot write (No space left" in result.stderr
    assert snapshot(out) == before and os.listdir(tmp_path) == ["run"]


def test_a_kill_between_files_keeps_the_previous_set(tmp_path):
    out = tmp_path / "run"
    write_file_set(out, a_set("a", ["megatron.sh", "slurm.sbatch"]))
    code = f"""
import os, signal
from pathlib import Path
from planner import fileset
import yaml
{A_SET}
real, calls = fileset.write_atomic, []
def killed(path, text, executable=False, option=None):
    calls.append(path)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, text, executable)
fileset.write_atomic = killed
fileset.write_file_set(Path({str(out)!r}), a_set("b", ["megatron.sh", "slurm.sbatch"]))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == -signal.SIGKILL
    files = snapshot(out)
    check_whole(files)
    assert yaml.safe_load(files["plan.yaml"])["run"] == "a"
    left = [p for p in os.listdir(tmp_path) if p != "run"]
    assert len(left) == 1 and left[0].startswith(".run.plan-")  # the killed run's hidden staging


WRITER = f"""
import sys
import yaml
from pathlib import Path
from planner.fileset import write_file_set
{A_SET}
run = sys.argv[2]
for i in range(int(sys.argv[3])):
    names = [f"{{run}}-{{k}}.sh" for k in range(1 + (i + int(run)) % 4)]
    write_file_set(Path(sys.argv[1]), a_set(f"{{run}}.{{i}}", names))
"""


def test_eight_concurrent_writers_and_a_reader(tmp_path):
    out = tmp_path / "run"
    seen, stop = [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            files = snapshot(out)
            if files:
                check_whole(files)
                seen.append(files["plan.yaml"])

    reader = threading.Thread(target=read)
    reader.start()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(out), str(run), "25"], cwd=ROOT, env=env)
        for run in range(8)
    ]
    codes = [w.wait(timeout=300) for w in writers]
    stop.set()
    reader.join()
    assert codes == [0] * 8
    check_whole(snapshot(out))
    assert len(set(seen)) > 1  # the reader did see sets change under it
    assert os.listdir(tmp_path) == ["run"]


def test_eight_concurrent_plan_runs_leave_one_complete_set(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", "from planner.cli import main; main()", "--gpus", "8", "--tp", "1"]
            + ["--pp", str(1 + i % 2), "--framework", ("megatron", "deepspeed")[i % 2]]
            + ["llama3.2-1b", "-o", str(out)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    for run in runs:
        assert run.wait(timeout=600) == 0, run.stderr.read()
    plan = yaml.safe_load((out / "plan.yaml").read_text())
    listed = {f for entry in plan["launch"].values() for f in entry["files"]}
    assert set(os.listdir(out)) == {"plan.yaml", *listed}
    assert os.listdir(tmp_path) == ["run"]


def test_a_symlinked_output_directory_is_followed(tmp_path):
    real = tmp_path / "real"
    write_file_set(real, a_set("a", ["x.sh"]))
    (tmp_path / "link").symlink_to(real)
    assert check_output_dir(tmp_path / "link") == real.resolve()
    write_file_set(tmp_path / "link", a_set("b", ["y.sh"]))
    assert (tmp_path / "link").is_symlink() and sorted(os.listdir(real)) == ["plan.yaml", "y.sh"]


def test_the_fallback_without_renameat2_also_swaps_whole_sets(tmp_path, monkeypatch):
    monkeypatch.setattr(fileset, "exchange", lambda a, b: False)
    out = tmp_path / "run"
    write_file_set(out, a_set("a", ["one.sh", "two.sh"]))
    write_file_set(out, a_set("b", ["three.sh"]))
    check_whole(snapshot(out))
    assert sorted(os.listdir(out)) == ["plan.yaml", "three.sh"] and os.listdir(tmp_path) == ["run"]
