"""The tabulation's layouts shared among processes (``planner.space.compile_terms``).

The rows of one layout are computed from the request and pure functions alone, so the layouts can
be dealt among processes and their rows put back in layout order, as one process would have
produced them: the tables, and so the plans and documents, are the same byte for byte
(``tests/planner/test_terms.py``). The workers are forked: they inherit the tabulation's state,
so only layout indices go out and rows come back. Fork is used on Linux only (macOS and Windows
would start workers by re-importing the planner, which costs more than it saves), and only where
every worker gets ``MIN_LAYOUTS_PER_PROCESS`` layouts.
"""

import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any

MIN_LAYOUTS_PER_PROCESS = 500
"""Below this a process's share costs about what starting it does (a fork, and the rows pickled
back); 500 layouts of an MoE model tabulate in about 0.3 s on the development machine."""
MAX_PROCESSES = 8
RUNS_PER_PROCESS = 4

_JOB: list[Callable[[int], Any]] = []  # the tabulation under way, inherited by the forked workers
_MEANWHILE: list[Callable[[], Any]] = []  # work for this process while it waits for the workers


def processes_for(layouts: int, per_process: int = MIN_LAYOUTS_PER_PROCESS) -> int:
    """How many processes tabulate ``layouts`` layouts: as many as the CPUs this process may run on
    (at most ``MAX_PROCESSES``) while each gets ``per_process`` (by default
    ``MIN_LAYOUTS_PER_PROCESS``); one off Linux."""
    if sys.platform != "linux":
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), MAX_PROCESSES, layouts // per_process))


def in_processes(job: Callable[[int], Any], layouts: Sequence[int], processes: int) -> list[Any]:
    """``job(p)`` of each layout ``p``, in the order of ``layouts``, computed by ``processes``
    forked workers. The layouts go in ``RUNS_PER_PROCESS`` runs per worker, each run to the next
    worker free: consecutive layouts share their tp, cp and expert layout, so each worker evaluates
    mostly its own layers (``planner.memo`` caches them per process; mixtral-8x7b on 512 GPUs took
    1.6 CPU s in one process, 1.8 in two taking runs, 2.2 in two taking every other layout), and
    runs of unequal cost even out (one run per worker left qwen3-30b-a3b's second half twice the
    first's work). With one process, this one computes them, as it does where the pool cannot be
    started."""
    if processes == 1:
        return [job(p) for p in layouts]
    n, runs = len(layouts), processes * RUNS_PER_PROCESS
    shares = [list(layouts[k * n // runs : (k + 1) * n // runs]) for k in range(runs)]
    try:
        pool = ProcessPoolExecutor(processes, mp_context=get_context("fork"), initializer=_ignore_interrupts)
    except OSError:  # no shared memory for the pool's queues (some containers): this process alone
        return [job(p) for p in layouts]
    _JOB[:] = [job]
    try:
        with pool:
            try:
                pending = pool.map(_results, shares)  # every run submitted: the workers are forked
                while _MEANWHILE:
                    _MEANWHILE.pop(0)()
                done = list(pending)
            except BaseException:  # an error, Ctrl-C: the runs not started are dropped, not waited for
                pool.shutdown(cancel_futures=True)
                raise
    finally:
        _JOB.clear()
    return [result for results in done for result in results]


@contextmanager
def meanwhile(task: Callable[[], Any]) -> Iterator[None]:
    """Run ``task`` in this process while worker processes tabulate in the block, where it would
    otherwise wait idle, or at the end of the block when none did (the command imports OR-Tools so,
    a quarter of a second it no longer adds to a large space's)."""
    _MEANWHILE.append(task)
    try:
        yield
    except BaseException:
        _MEANWHILE.clear()
        raise
    if _MEANWHILE:
        _MEANWHILE.clear()
        task()


def _results(share: list[int]) -> list[Any]:
    """The job's result of each layout of ``share``."""
    return [_JOB[0](p) for p in share]


def _ignore_interrupts() -> None:
    """Ctrl-C is the command's to handle: a worker ends with the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
