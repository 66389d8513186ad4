"""What this device can do, measured: the dense GEMM rate per dtype and the memory read rate
(what each phase's time is measured against), and the timer every benchmark uses."""
from __future__ import annotations

import functools
import time
from typing import Callable

import torch

from dcgan_ref.runtime.hardware import native_bf16


def time_calls(fn: Callable[[], object], *, device: torch.device, calls: int, warmup: int,
               repeats: int) -> list[float]:
    """Seconds per call of ``fn``, one value per repeat of ``calls`` calls, after ``warmup`` calls.

    On CUDA, CUDA events bracket each repeat (no host sync inside it); elsewhere a host clock.
    """
    for _ in range(warmup):
        fn()
    out = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end) / 1e3 / calls)
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            out.append((time.perf_counter() - t0) / calls)
    return out


# Every probe is sized by time, not by a fixed n: a path that runs a thousand times slower than
# expected (bf16 on a CPU without native kernels: 1 GFLOP/s) costs a fraction of a second, not minutes.
PROBE_CALL_S = 0.05   # the probe grows until one call takes this long ...
PROBE_TOTAL_S = 0.4   # ... and stops timing once this much has been spent


def timed_gemm_tflops(device: torch.device, dtype: torch.dtype = torch.float32, n: int | None = None,
                      calls: int = 3) -> float:
    """The dense GEMM rate this device reaches, TFLOP/s (best of up to ``calls`` n x n x n products,
    2 n^3 FLOPs each): the compute limit a compute-bound phase is measured against, on devices
    with no datasheet peak here (a CPU's depends on its cores, clock and ISA).

    ``n=None`` sizes the product by time: n doubles from 256 until one product takes
    ``PROBE_CALL_S`` (or n reaches 4,096), so the probe costs well under a second at any speed.
    """
    sizes = [n] if n is not None else [256 * 2**i for i in range(5)]
    spent = 0.0
    for size in sizes:
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        first = time_calls(lambda: a @ b, device=device, calls=1, warmup=1, repeats=1)[0]  # warm: pool, kernels
        spent += 2 * first
        if first >= PROBE_CALL_S or size == sizes[-1] or spent > PROBE_TOTAL_S:
            break
    repeats = min(calls - 1, int((PROBE_TOTAL_S - spent) / max(first, 1e-6)))  # within the time left
    more = time_calls(lambda: a @ b, device=device, calls=1, warmup=0, repeats=repeats) if repeats > 0 else []
    best = min([first, *more])
    return 2 * size**3 / best / 1e12


def timed_read_gbps(device: torch.device, mib: int = 256, calls: int = 3) -> float:
    """The memory read rate this device reaches, GB/s (best of ``calls`` sums over ``mib``
    MiB of float32, several times any cache): the limit of a phase that streams a matrix bigger
    than the caches, such as a skinny-GEMM pass of the SVM over the feature matrix."""
    x = torch.ones(mib * 2**20 // 4, device=device)
    best = min(time_calls(lambda: x.sum(), device=device, calls=1, warmup=1, repeats=calls))
    return x.numel() * 4 / best / 1e9


@functools.cache
def _device_limits(device: torch.device) -> tuple[tuple[str, float], ...]:
    limits = {"limit_gemm_fp32_tflops": timed_gemm_tflops(device)}
    if native_bf16(device):  # elsewhere bf16 is emulated: a number would only time the emulation
        limits["limit_gemm_bf16_tflops"] = timed_gemm_tflops(device, torch.bfloat16)
    limits["limit_read_gbps"] = timed_read_gbps(device)
    return tuple(limits.items())


def device_limits(device: torch.device) -> dict[str, float]:
    """Measured limits, logged beside a run's phase timings: fp32 GEMM, bf16 GEMM only where the
    device runs bf16 natively (absent elsewhere), memory read. Measured once per process and
    device (about a second on a CPU), then the same figures are returned."""
    return dict(_device_limits(torch.device(device)))


def describe_limits(limits: dict[str, float]) -> str:
    """One log line: ``fp32 GEMM 0.30 TFLOP/s, bf16 GEMM 1.80 TFLOP/s, memory read 22.0 GB/s``."""
    bf16 = limits.get("limit_gemm_bf16_tflops")
    return (f"fp32 GEMM {limits['limit_gemm_fp32_tflops']:.2f} TFLOP/s, "
            + (f"bf16 GEMM {bf16:.2f} TFLOP/s" if bf16 is not None else "bf16 GEMM: no native bf16")
            + f", memory read {limits['limit_read_gbps']:.1f} GB/s")
