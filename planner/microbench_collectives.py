"""NCCL collectives for ``plan profile``: one process per visible GPU, bus bandwidth per message size.

Operations and sizes follow ``nccl-tests``: the size of all-reduce and all-to-all is each rank's
buffer, of all-gather the gathered output, of reduce-scatter the input, of send/receive what each
rank sends to the next (ring neighbours, as ``sendrecv_perf`` pairs them). Bus bandwidth is
algorithm bandwidth (size over time) times the factor of ``constraints/kernels.py``. Rank 0's
median over the repeats is reported. On the CPU (``--device cpu``) two processes run the same code
over gloo, to test it.
"""

import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

from constraints import kernels as K
from planner.profile import Collective, CollectivePoint, Span, rounded

BUS_FACTORS: dict[Collective, Callable[[int], float]] = {
    Collective.ALL_REDUCE: K.all_reduce_bus_factor,
    Collective.ALL_GATHER: K.gather_bus_factor,
    Collective.REDUCE_SCATTER: K.gather_bus_factor,
    Collective.ALL_TO_ALL: K.gather_bus_factor,
    Collective.SEND_RECV: K.send_recv_bus_factor,
}
CPU_RANKS = 2  # processes of the CPU (gloo) test run
MIN_BUDGET_S = 30.0  # process start-up (importing torch, NCCL rendezvous) takes 10-20 s of it
BF16_BYTES = 2
FP32_BYTES = 4  # gloo reduces float32 everywhere; bf16 only in recent builds


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _operation(torch: Any, op: Collective, size_bytes: int, ranks: int, rank: int, device: str) -> Callable:
    """A call that runs ``op`` once on buffers of the nccl-tests ``size_bytes``."""
    dist = torch.distributed
    dtype, width = (torch.bfloat16, BF16_BYTES) if device == "cuda" else (torch.float32, FP32_BYTES)
    count = max(ranks, size_bytes // width // ranks * ranks)  # divisible into equal shards

    def buffer(n: int) -> Any:
        return torch.ones(n, device=device, dtype=dtype)

    if op is Collective.ALL_REDUCE:
        whole = buffer(count)
        return lambda: dist.all_reduce(whole)
    if op is Collective.ALL_GATHER:  # renamed ``*_single`` in recent PyTorch, same arguments
        whole, shard = buffer(count), buffer(count // ranks)
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        return lambda: gather(whole, shard)
    if op is Collective.REDUCE_SCATTER:
        whole, shard = buffer(count), buffer(count // ranks)
        scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
        return lambda: scatter(shard, whole)
    if op is Collective.ALL_TO_ALL:
        send, receive = buffer(count), buffer(count)
        return lambda: dist.all_to_all_single(receive, send)
    send, receive = buffer(count), buffer(count)
    ops = [
        dist.P2POp(dist.isend, send, (rank + 1) % ranks),
        dist.P2POp(dist.irecv, receive, (rank - 1) % ranks),
    ]
    return lambda: [request.wait() for request in dist.batch_isend_irecv(ops)]


def _median_s(torch: Any, fn: Callable, device: str, warmup: int, repeats: int) -> float:
    dist = torch.distributed
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        dist.barrier()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _worker(rank: int, ranks: int, init: str, device: str, sizes: list[int], counts: tuple, out: Any) -> None:
    """One rank: every operation at every size; rank 0 reports (rows, failures) through ``out``."""
    import torch

    if device == "cuda":
        torch.cuda.set_device(rank)
    backend = "nccl" if device == "cuda" else "gloo"
    torch.distributed.init_process_group(backend, init_method=init, rank=rank, world_size=ranks)
    rows, failures = [], []
    try:
        for op in Collective:
            for size in sizes:
                try:
                    fn = _operation(torch, op, size, ranks, rank, device)
                    seconds = _median_s(torch, fn, device, *counts)
                except Exception as exc:  # an operation the backend lacks must not lose the others
                    failures.append(f"{op.value} {size} B: {type(exc).__name__}: {str(exc)[:100]}")
                    torch.distributed.barrier()
                    continue
                bus = size / seconds * BUS_FACTORS[op](ranks) / 1e9
                rows.append((op.value, ranks, size, bus))
    finally:
        if rank == 0:
            out.put((rows, failures))
        torch.distributed.destroy_process_group()


def measure_collectives(
    device: str, ranks: int, sizes: tuple[int, ...], counts: tuple[int, int], budget_s: float
) -> tuple[list[CollectivePoint], list[str]]:
    """Spawn ``ranks`` processes and measure every collective; (rows, failures). ``counts`` is
    (warm-up calls, timed calls); a run past ``budget_s`` (at least ``MIN_BUDGET_S``) is stopped."""
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    out = context.SimpleQueue()
    init = f"tcp://127.0.0.1:{_free_port()}"
    args = (ranks, init, device, list(sizes), counts, out)
    procs = mp.start_processes(_worker, args=args, nprocs=ranks, join=False, start_method="spawn")
    budget_s = max(budget_s, MIN_BUDGET_S)
    deadline = time.monotonic() + budget_s
    while not procs.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in procs.processes:
                process.terminate()
            raise TimeoutError(f"collectives still running after {budget_s:.0f} s; stopped")
    if out.empty():
        raise RuntimeError("rank 0 reported nothing")
    rows, failures = out.get()
    span = Span.NVLINK
    points = [
        CollectivePoint(op=Collective(op), span=span, num_ranks=n, size_bytes=size, bus_gbps=rounded(bus))
        for op, n, size, bus in rows
    ]
    return points, failures
