"""What this machine is: the CPU's model and the instruction set that decides its speed, and
whether a device runs bf16 natively.

Two 2-core CPUs have run this project: an Intel Xeon with AMX, where a bf16 GEMM runs at
about 1.8 TFLOP/s, and an AMD EPYC with AVX2 only, where torch has no native bf16 kernel and
the same GEMM runs at about 1 GFLOP/s, a thousand times slower. So bf16 is used, and
measured, only where :func:`native_bf16` says so, and every row names its CPU and ISA.

``ATEN_CPU_CAPABILITY=avx2`` (with ``ONEDNN_MAX_CPU_ISA=AVX2``) makes an AMX machine run as an
AVX2-only one; :func:`native_bf16` follows it, so the slow machine can be rehearsed on the fast one.
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform
from typing import Iterator

import torch

from dcgan_ref.runtime.errors import UserError

# CPU flags (Linux /proc/cpuinfo) behind a native bf16 GEMM: AMX tiles, or AVX-512's bf16 dot product.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first processor in /proc/cpuinfo; ("", {}) where there is none."""
    model, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = frozenset(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def cpu_isa() -> str:
    """The vector ISA torch's CPU kernels run with, plus AMX where present: ``AVX2``,
    ``AVX-512``, ``AVX-512 + AMX`` (an ``ATEN_CPU_CAPABILITY`` cap is what it reports)."""
    capability = torch.backends.cpu.get_cpu_capability()  # "DEFAULT", "AVX2", "AVX512", "ZVECTOR", ...
    isa = {"AVX512": "AVX-512", "DEFAULT": "no SIMD"}.get(capability, capability)
    if capability == "AVX512" and "amx_bf16" in _cpuinfo()[1]:
        isa += " + AMX"
    return isa


def cpu_name() -> str:
    """``<model> (<n> cores, <ISA>)``: enough to tell this project's machines apart."""
    return f"{_cpuinfo()[0]} ({os.cpu_count()} cores, {cpu_isa()})"


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 matrix products natively (else they are emulated, and slow).

    CUDA: compute capability 8.0 or newer (tensor-core bf16). CPU: AMX or AVX512-BF16 in the
    flags, and torch's kernels not capped below AVX-512.
    """
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type != "cpu":
        return False
    return torch.backends.cpu.get_cpu_capability() == "AVX512" and any(f in _cpuinfo()[1] for f in BF16_FLAGS)


def training_bf16(choice: str, device: torch.device, default: bool) -> bool:
    """``--precision`` as bf16 autocast on or off: ``bf16`` (refused where ``device`` would emulate
    it, about 100x slower than fp32), ``fp32``, or anything else: ``default``."""
    if choice == "bf16" and not native_bf16(device):
        name = cpu_name() if device.type == "cpu" else torch.cuda.get_device_name(device)
        raise UserError(f"--precision bf16: this {device.type} ({name}) has no native bf16 kernels, where bf16 runs "
                        f"about 100x slower than fp32; use --precision fp32")
    return {"bf16": True, "fp32": False}.get(choice, default)


def training_precision(bf16: bool, device: torch.device) -> str:
    """How a GAN training's products ran, as its rows name it. On CUDA, cuDNN runs float32
    convolutions in TF32 unless told not to (torch's default): a precision no A/B here measured,
    so the row says so instead of "fp32"."""
    if bf16:
        return "bf16 autocast"
    return "fp32 (TF32 convolutions)" if device.type == "cuda" and torch.backends.cudnn.allow_tf32 else "fp32"


@contextlib.contextmanager
def ieee_fp32_matmul(device: torch.device) -> Iterator[None]:
    """Force full-precision float32 GEMMs on CUDA (no TF32) for the solve; restore after.

    Uses the ``fp32_precision`` API where it exists (torch >= 2.9): mixing it with the
    legacy ``allow_tf32`` flag raises in recent torch, while reading and writing only the
    new one is safe whichever API the caller used.
    """
    if device.type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul
    try:
        old, attr, value = matmul.fp32_precision, "fp32_precision", "ieee"
    except AttributeError:  # older torch
        old, attr, value = matmul.allow_tf32, "allow_tf32", False
    setattr(matmul, attr, value)
    try:
        yield
    finally:
        setattr(matmul, attr, old)


def pick_device(name: str | None = None) -> torch.device:
    """``--device``: the named device, checked; default CUDA when present, else the CPU."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use cpu, cuda or cuda:<index>") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: this machine has no usable CUDA GPU; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name}: only cpu and cuda are supported")
    return device
