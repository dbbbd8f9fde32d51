"""What one GPU achieves, per kind of work: from a measured profile's tables where the hardware file
has them (``planner/profile.py``), else from the datasheet peaks times the calibrated efficiencies
(``planner/calibration.py``).

A table answers by piecewise-linear interpolation in the logarithm of the work's size (FLOPs of a
product, keys of an attention call, bytes of a copy or a message), clamped at its ends; the kernel
formulas themselves live in ``constraints/kernel_times.py`` and ``constraints/throughput.py``.
"""

import bisect
import math
from collections.abc import Sequence

from constraints import kernel_times as K
from constraints import throughput as T
from constraints.kernels import ATTENTION_BACKWARD_TO_FORWARD, gemm_flops
from planner.calibration import StepTimeConstants
from planner.specs import HardwareSpec

GB = 1e9
TERA = 1e12


def interpolate_log(points: Sequence[tuple[float, float]], x: float) -> float:
    """``y`` at ``x`` from ``(x, y)`` points, linear in ``log x``, clamped at the ends."""
    points = sorted(points)
    xs = [math.log(p[0]) for p in points]
    lx = math.log(max(x, 1e-30))
    i = bisect.bisect_left(xs, lx)
    if i <= 0:
        return points[0][1]
    if i >= len(points):
        return points[-1][1]
    (x0, y0), (x1, y1) = (xs[i - 1], points[i - 1][1]), (xs[i], points[i][1])
    return y0 + (y1 - y0) * (lx - x0) / (x1 - x0) if x1 > x0 else y1


def rates_of(hardware: HardwareSpec, c: StepTimeConstants) -> "Rates":
    """``Rates(hardware, c)``, the same object while the pair is the same (by identity: the tables
    ask for every row, and the evaluator's caches, ``planner.memo``, match it by identity)."""
    if not (_LAST and _LAST[0] is hardware and _LAST[1] is c):
        _LAST[:] = hardware, c, Rates(hardware, c)
    return _LAST[2]


_LAST: list = []


class Rates:
    """Achieved rates of one GPU for the step-time model."""

    def __init__(self, hardware: HardwareSpec, c: StepTimeConstants) -> None:
        self.hardware, self.c = hardware, c
        profile = hardware.profile
        self._gemm: dict[str, list[tuple[float, float]]] = {}
        self._attention: list[tuple[float, float]] = []
        self._hbm = hardware.hbm_bandwidth_bytes_per_s * c.hbm_efficiency
        self._collectives: dict[tuple[str, str], list[tuple[float, float]]] = {}
        if profile is None:
            return
        for g in profile.gemm:
            self._gemm.setdefault(g.dtype.value, []).append((gemm_flops(g.m, g.n, g.k), g.tflops * TERA))
        # Forward and backward rows both count FLOPs by FlashAttention's convention: one rate per
        # sequence length, their harmonic mean weighted by the 1 : 2.5 work split.
        by_seq: dict[int, dict[str, float]] = {}
        for a in profile.attention:
            by_seq.setdefault(a.seq_len, {})[a.direction.value] = a.tflops * TERA
        for seq, rate in sorted(by_seq.items()):
            if "fwd" in rate and "bwd" in rate:
                work = 1 + ATTENTION_BACKWARD_TO_FORWARD
                self._attention.append(
                    (seq, work / (1 / rate["fwd"] + ATTENTION_BACKWARD_TO_FORWARD / rate["bwd"]))
                )
        if profile.memory_bound:
            self._hbm = max(p.gbps for p in profile.memory_bound) * GB
        for p in profile.collectives:
            self._collectives.setdefault((p.op.value, p.span.value), []).append(
                (p.size_bytes, p.bus_gbps * GB)
            )

    def gemm_s(self, m: float, n: float, k: float, fp8: bool) -> float:
        """One product, from the profile's ``gemm`` rows of its dtype, else the roofline."""
        dtype = "fp8" if fp8 else "bf16"
        if dtype in self._gemm:
            flops = gemm_flops(m, n, k)
            return flops / interpolate_log(self._gemm[dtype], flops)
        peak = self.hardware.peak_flops
        efficiency = self.c.gemm_max_efficiency
        if fp8 and self.hardware.peak_flops_fp8:
            peak, efficiency = self.hardware.peak_flops_fp8, self.c.gemm_fp8_efficiency
        return K.gemm_s(m, n, k, peak, efficiency, self._hbm, 1 if fp8 else 2, 2)

    def attention_s(self, flops: float, seq_len: float) -> float:
        """Fused attention of ``flops`` (FlashAttention's count) at ``seq_len`` keys."""
        if self._attention:
            return flops / interpolate_log(self._attention, seq_len)
        efficiency = K.attention_efficiency(seq_len, self.c.attention_efficiency, self.c.attention_half_seq)
        return K.compute_s(flops, self.hardware.peak_flops, efficiency)

    def memory_s(self, num_bytes: float) -> float:
        """Memory-bound work at the achieved HBM bandwidth."""
        return K.memory_bound_s(num_bytes, self._hbm)

    def bus_bandwidth(self, op: str, span_gpus: int, message_bytes: float) -> float:
        """Per-GPU bus bandwidth of collective ``op`` over ``span_gpus`` consecutive ranks: NVLink
        inside the NVLink domain, the network beyond it; from the profile's ``collectives`` rows for
        that operation and span where it has them."""
        nvlink = span_gpus <= self.hardware.nvlink_domain_gpus
        measured = self._collectives.get((op, "nvlink" if nvlink else "network"))
        if measured:
            return interpolate_log(measured, message_bytes)
        if nvlink:
            return self.hardware.intra_node_bandwidth_bytes_per_s * self.c.comm_efficiency
        return self.hardware.inter_node_bandwidth_bytes_per_s * self.c.network_efficiency

    def all_reduce_s(self, message_bytes: float, ranks: int, span_gpus: int) -> float:
        """Ring all-reduce of ``message_bytes`` over ``ranks`` spanning ``span_gpus``."""
        return T.all_reduce_s(
            message_bytes, ranks, self.bus_bandwidth("all_reduce", span_gpus, message_bytes)
        )

    def all_gather_s(self, message_bytes: float, ranks: int, span_gpus: int) -> float:
        """All-gather (or reduce-scatter) producing ``message_bytes`` per rank."""
        return T.all_gather_s(
            message_bytes, ranks, self.bus_bandwidth("all_gather", span_gpus, message_bytes)
        )

    def all_to_all_s(self, message_bytes: float, ranks: int, span_gpus: int) -> float:
        """All-to-all of ``message_bytes`` per rank over ``ranks`` consecutive ranks spanning
        ``span_gpus``; beyond one NVLink domain only the traffic that leaves the domain crosses the
        network."""
        domain = self.hardware.nvlink_domain_gpus
        if span_gpus <= domain or ranks < span_gpus:
            return T.all_to_all_s(
                message_bytes, ranks, self.bus_bandwidth("all_to_all", span_gpus, message_bytes)
            )
        return T.split_all_to_all_s(
            message_bytes,
            ranks,
            domain,
            self.bus_bandwidth("all_to_all", domain, message_bytes),
            self.bus_bandwidth("all_to_all", span_gpus, message_bytes),
        )

    def send_s(self, message_bytes: float, span_gpus: int) -> float:
        """One point-to-point send between ranks ``span_gpus`` apart."""
        return T.point_to_point_s(message_bytes, self.bus_bandwidth("send_recv", span_gpus, message_bytes))
