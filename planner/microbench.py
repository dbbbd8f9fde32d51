"""The microbenchmarks behind ``plan profile``: what one GPU achieves, table by table.

GEMMs (bf16, and fp8 through ``torch._scaled_mm`` where the GPU has FP8 tensor cores) over the
shapes of transformer layers, fused attention forward and backward
(``scaled_dot_product_attention`` on the FlashAttention backend), device-memory copy bandwidth,
and NCCL collectives (``planner/microbench_collectives.py``, when more than one GPU is visible).
Each point is timed with CUDA events after a warm-up and reported as the median; a point that fails
is left out and its error recorded in the profile's provenance, so one unsupported kernel never
loses the rest. ``--small --device cpu`` runs a tiny version of every benchmark on the CPU: the
same code path, for tests; its numbers are CPU numbers and the provenance says so.

PyTorch is imported lazily: it is not a dependency of the planner.
"""

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from constraints import kernels as K
from planner.errors import PlannerError
from planner.hardware import GB, TERA
from planner.profile import (
    AttentionPass,
    AttentionPoint,
    Dtype,
    GemmPoint,
    MemoryBoundPoint,
    rounded,
)

Progress = Callable[[str], None]
FP8_COMPUTE_CAPABILITY = (8, 9)  # Ada and Hopper onwards have FP8 tensor cores
MAX_ERROR_CHARS = 160  # a failure's first line, kept short enough for a provenance string
SECTION_SHARES = {"gemm": 0.30, "attention": 0.30, "memory_bound": 0.10, "collectives": 0.30}


@dataclass(frozen=True, slots=True, kw_only=True)
class Sweep:
    """The points each benchmark measures."""

    gemm_shapes: tuple[tuple[int, int, int], ...]
    """``(m, n, k)``: tokens of a micro-batch times a layer's per-rank weight."""
    attention_shapes: tuple[tuple[int, int, int, int, int], ...]
    """``(batch, heads, kv_heads, seq_len, head_dim)``, causal."""
    copy_sizes_bytes: tuple[int, ...]
    """Buffer sizes of the device-to-device copy."""
    collective_sizes_bytes: tuple[int, ...]
    """nccl-tests sizes of the collectives."""
    num_warmup: int
    """Untimed calls before each point."""
    num_repeats: int
    """Timed calls per point; the median is reported."""


# Widths of Llama-class layers (h = 4096, 8192; GQA with 8 KV heads; SwiGLU ffn = 3.5 h) whole and
# split 8 ways by tensor parallelism, at micro-batches of 2k and 8k tokens.
_WEIGHTS = ((4096, 4096), (6144, 4096), (14336, 4096), (4096, 14336), (8192, 8192), (10240, 8192),
            (28672, 8192), (8192, 28672), (1024, 8192), (3584, 8192), (8192, 3584))  # fmt: skip
FULL = Sweep(
    gemm_shapes=tuple((m, n, k) for m in (2048, 8192) for n, k in _WEIGHTS),
    attention_shapes=(
        (8, 32, 8, 2048, 128),
        (4, 32, 8, 4096, 128),
        (2, 32, 8, 8192, 128),
        (1, 32, 8, 16384, 128),
        (4, 32, 32, 4096, 128),
        (4, 64, 8, 4096, 64),
    ),
    copy_sizes_bytes=(2**24, 2**28, 2**30),
    collective_sizes_bytes=(2**20, 2**24, 2**27, 2**30),
    num_warmup=3,
    num_repeats=10,
)
SMALL = Sweep(
    gemm_shapes=((64, 64, 64), (128, 64, 128)),
    attention_shapes=((1, 2, 1, 64, 16), (1, 2, 2, 128, 32)),
    copy_sizes_bytes=(2**16, 2**20),
    collective_sizes_bytes=(2**12, 2**16),
    num_warmup=1,
    num_repeats=3,
)


@dataclass(slots=True)
class Section:
    """What one benchmark produced: its rows, its failures, why points were skipped, and how
    points were run where that differs from the plan (``notes``)."""

    rows: list[Any] = field(default_factory=list)
    """Measured points, as profile table rows."""
    failures: list[str] = field(default_factory=list)
    """One line per point that failed: the point and the error."""
    skipped: str = ""
    """Why points were not run (time budget, one GPU), or empty."""
    notes: list[str] = field(default_factory=list)
    """How points were run where that differs from the plan (K/V heads repeated for GQA)."""


def import_torch() -> Any:
    """PyTorch, or a one-line error saying how to get it."""
    try:
        import torch
    except ImportError:
        raise PlannerError(
            "plan profile needs PyTorch, which is not installed; install it (pip install torch) "
            "on the GPU machine"
        ) from None
    return torch


def check_device(torch: Any, device: str) -> None:
    """Refuse a CUDA run where PyTorch sees no CUDA GPU."""
    if device == "cuda" and not torch.cuda.is_available():
        raise PlannerError(
            f"--device cuda: PyTorch {torch.__version__} sees no CUDA GPU; run plan profile on a GPU "
            "machine (or --small --device cpu to try the benchmarks on this CPU)"
        )


def one_line(exc: BaseException) -> str:
    """An exception's type and first line, short."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:MAX_ERROR_CHARS]


class Timer:
    """Median seconds of a callable on one device: CUDA events on a GPU, a wall clock on the CPU."""

    def __init__(self, torch: Any, device: str, sweep: Sweep) -> None:
        self.torch, self.cuda, self.sweep = torch, device == "cuda", sweep

    def median_s(self, fn: Callable[[], Any]) -> float:
        for _ in range(self.sweep.num_warmup):
            fn()
        if not self.cuda:
            times = []
            for _ in range(self.sweep.num_repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return statistics.median(times)
        cuda = self.torch.cuda
        pairs = [
            (cuda.Event(enable_timing=True), cuda.Event(enable_timing=True))
            for _ in range(self.sweep.num_repeats)
        ]
        cuda.synchronize()
        for start, end in pairs:
            start.record()
            fn()
            end.record()
        cuda.synchronize()
        return statistics.median(start.elapsed_time(end) / 1e3 for start, end in pairs)


def run_points(
    name: str, points: list[Any], measure: Callable[[Any], Any], deadline: float, progress: Progress
) -> Section:
    """Measure each point until ``deadline``; a failing point is recorded, not fatal."""
    section = Section()
    for index, point in enumerate(points):
        if time.monotonic() > deadline:
            section.skipped = f"time budget: {len(points) - index} of {len(points)} points not run"
            progress(f"{name}: {section.skipped}")
            break
        try:
            row = measure(point)
        except Exception as exc:  # one unsupported kernel or shape must not lose the others
            section.failures.append(f"{describe(point)}: {one_line(exc)}")
            progress(f"{name} {describe(point)}: failed ({one_line(exc)})")
            continue
        section.rows.append(row)
        progress(f"{name} {describe(point)}: {row_rate(row)}")
    return section


def describe(point: Any) -> str:
    """A benchmark point for people: ``bf16 8192x8192x8192``, ``fwd 1x32x8x4096x128``, ``1048576``."""
    if not isinstance(point, tuple):
        return str(point)
    label, *sizes = point
    return f"{label.value} {'x'.join(map(str, sizes))}"


def row_rate(row: Any) -> str:
    """A row's measured rate for the progress line."""
    if hasattr(row, "tflops"):
        return f"{row.tflops:.4g} TFLOP/s"
    return f"{row.gbps:.4g} GB/s"


def gemm_section(torch: Any, device: str, sweep: Sweep, deadline: float, progress: Progress) -> Section:
    """bf16 GEMMs, and fp8 ones where the device has FP8 tensor cores."""
    timer = Timer(torch, device, sweep)
    has_fp8 = device == "cpu" or torch.cuda.get_device_capability() >= FP8_COMPUTE_CAPABILITY
    dtypes = [Dtype.BF16, Dtype.FP8] if has_fp8 else [Dtype.BF16]

    def measure(point: tuple[Dtype, int, int, int]) -> GemmPoint:
        dtype, m, n, k = point
        a = torch.randn(m, k, device=device, dtype=torch.bfloat16)
        b = torch.randn(n, k, device=device, dtype=torch.bfloat16)
        if dtype is Dtype.BF16:
            seconds = timer.median_s(lambda: torch.matmul(a, b.t()))
        else:  # e4m3 inputs, B column-major as cuBLASLt wants it, per-tensor scales, bf16 output
            a8, b8 = a.to(torch.float8_e4m3fn), b.to(torch.float8_e4m3fn).t()
            one = torch.ones((), device=device, dtype=torch.float32)
            seconds = timer.median_s(
                lambda: torch._scaled_mm(a8, b8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
            )
        return GemmPoint(dtype=dtype, m=m, n=n, k=k, tflops=rounded(K.gemm_flops(m, n, k) / seconds / TERA))

    points = [(dtype, *shape) for dtype in dtypes for shape in sweep.gemm_shapes]
    section = run_points("gemm", points, measure, deadline, progress)
    if not has_fp8:
        major, minor = torch.cuda.get_device_capability()
        section.failures.append(f"fp8 not run: compute capability {major}.{minor} has no FP8 tensor cores")
    return section


def attention_section(torch: Any, device: str, sweep: Sweep, deadline: float, progress: Progress) -> Section:
    """Causal attention forward and backward on the FlashAttention backend of SDPA."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    timer = Timer(torch, device, sweep)
    notes: list[str] = []

    def measure(point: tuple[AttentionPass, int, int, int, int, int]) -> AttentionPoint:
        direction, batch, heads, kv_heads, seq_len, head_dim = point

        def tensor(num_heads: int) -> Any:
            shape = (batch, num_heads, seq_len, head_dim)
            return torch.randn(shape, device=device, dtype=torch.bfloat16, requires_grad=True)

        q, k, v = tensor(heads), tensor(kv_heads), tensor(kv_heads)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            try:
                forward = sdpa_call(torch, q, k, v, gqa=kv_heads != heads)
            except (RuntimeError, TypeError) as exc:  # a flash kernel (or PyTorch) without GQA
                if kv_heads == heads:
                    raise
                k, v = (
                    t.detach().repeat_interleave(heads // kv_heads, dim=1).requires_grad_() for t in (k, v)
                )
                forward = sdpa_call(torch, q, k, v, gqa=False)
                note = f"GQA shapes ran with K/V heads repeated, the same FLOPs ({one_line(exc)})"
                if note not in notes:
                    notes.append(note)

            if direction is AttentionPass.FORWARD:
                seconds = timer.median_s(forward)
                flops = K.attention_forward_flops(batch, heads, seq_len, seq_len, head_dim, True)
            else:
                out = forward()
                grad = torch.randn_like(out)
                seconds = timer.median_s(lambda: torch.autograd.grad(out, (q, k, v), grad, retain_graph=True))
                flops = K.attention_backward_flops(batch, heads, seq_len, seq_len, head_dim, True)
        return AttentionPoint(
            direction=direction,
            dtype=Dtype.BF16,
            batch=batch,
            num_heads=heads,
            num_kv_heads=kv_heads,
            seq_len=seq_len,
            head_dim=head_dim,
            causal=True,
            tflops=rounded(flops / seconds / TERA),
        )

    points = [(direction, *shape) for shape in sweep.attention_shapes for direction in AttentionPass]
    section = run_points("attention", points, measure, deadline, progress)
    section.notes += notes
    return section


def sdpa_call(torch: Any, q: Any, k: Any, v: Any, gqa: bool) -> Callable[[], Any]:
    """Causal SDPA on q, k, v, called once to surface an unsupported combination here."""

    def forward() -> Any:
        if gqa:
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    forward()
    return forward


def copy_section(torch: Any, device: str, sweep: Sweep, deadline: float, progress: Progress) -> Section:
    """Device-to-device copies: achieved memory bandwidth for memory-bound work."""
    timer = Timer(torch, device, sweep)

    def measure(size: int) -> MemoryBoundPoint:
        src = torch.empty(size, device=device, dtype=torch.uint8)
        dst = torch.empty_like(src)
        seconds = timer.median_s(lambda: dst.copy_(src))
        return MemoryBoundPoint(size_bytes=size, gbps=rounded(K.copy_traffic_bytes(size) / seconds / GB))

    return run_points("memory_bound", list(sweep.copy_sizes_bytes), measure, deadline, progress)
