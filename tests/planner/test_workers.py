"""How the tabulation shares a large space among processes (``planner/workers.py``); that the
tables are the same as one process's is ``tests/planner/test_terms.py``'s."""

import multiprocessing
import os
import time

import pytest

from planner import workers
from planner.workers import MIN_LAYOUTS_PER_PROCESS, in_processes, meanwhile, processes_for


def test_one_process_for_small_spaces_and_off_linux(monkeypatch):
    assert processes_for(MIN_LAYOUTS_PER_PROCESS - 1) == 1
    monkeypatch.setattr(workers.sys, "platform", "darwin")
    assert processes_for(100 * MIN_LAYOUTS_PER_PROCESS) == 1


def test_results_come_back_in_layout_order_from_other_processes():
    results = in_processes(lambda p: (p * p, os.getpid()), range(50), 2)
    assert [r for r, _ in results] == [p * p for p in range(50)]
    assert os.getpid() not in {pid for _, pid in results}  # the workers computed them


def test_the_task_meanwhile_runs_once_while_workers_work_or_after_the_block():
    ran = []
    with meanwhile(lambda: ran.append(os.getpid())):
        in_processes(lambda p: p, range(10), 2)
        assert ran == [os.getpid()]  # in this process, while the workers worked
    assert ran == [os.getpid()]
    with meanwhile(lambda: ran.append("after")):
        pass  # no workers: the task runs when the block ends
    assert ran == [os.getpid(), "after"]


def test_the_task_meanwhile_does_not_run_when_the_block_fails():
    ran = []
    with pytest.raises(ValueError), meanwhile(lambda: ran.append(1)):
        raise ValueError("bad input")
    with meanwhile(lambda: ran.append(2)):
        pass
    assert ran == [2]


def test_an_interruption_while_workers_work_drops_the_runs_not_started(tmp_path):
    """Ctrl-C (here an error raised by this process while it waits) ends the tabulation without
    running the runs still queued, and leaves no worker behind."""
    done = tmp_path / "done"

    def slow(p):
        with done.open("a") as out:
            out.write(f"{p}\n")
        time.sleep(0.01)
        return p

    def interrupt():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), meanwhile(interrupt):
        in_processes(slow, range(400), 2)  # 8 runs of 50 layouts
    ran = done.read_text().split() if done.exists() else []
    assert len(ran) < 400  # the runs queued behind the two being worked on never started
    assert multiprocessing.active_children() == []


def test_layouts_built_by_workers_are_one_processs(monkeypatch):
    """``space._layouts`` shares large spaces' (tp, cp, pp) meshes among processes: the same
    layouts in the same order as one process builds."""
    from planner import space
    from planner.io import load_model
    from planner.specs import TrainingSpec

    model, training = load_model("qwen3-30b-a3b"), TrainingSpec(seq_len=8192, global_batch_size=512)
    built = []
    for forced in (1, 2):
        monkeypatch.setattr(space, "processes_for", lambda work, share, forced=forced: forced)
        space._LAST_LAYOUTS.clear()
        built.append(space._layouts(model, training, 512, space.Pins(), 8))
    assert built[0] == built[1] and len(built[0][0]) > 1000
