"""``python -m benchmarks.throughput.cpu_step``: the GAN training step on this CPU, setting by
setting, against the CPU's measured GEMM rate (issue #23, item 3).

A CPU run is long only because of the training step: the imagenet32 D+G step costs 5.9 GFLOP
per image. This measures how close that step gets to the chip, and which CPU settings help:

* ``fp32``: eager, NCHW, oneDNN on (torch's default on x86);
* ``fp32, oneDNN off``: the same with ``torch.backends.mkldnn`` disabled (what oneDNN buys);
* ``fp32, channels_last``: NHWC weights and batches;
* ``bf16 ...``: bf16 autocast, only where the CPU runs bf16 natively (AMX, AVX512-BF16):
  elsewhere it is emulated at about 1 GFLOP/s and is recorded as skipped, not timed;
* ``..., torch.compile``: G and D compiled by inductor (compile time reported, not timed).

Each setting is the trainer's own step (:class:`~benchmarks.throughput.workloads.TrainLoop`:
:class:`dcgan_ref.step.GanSetup` fed by ``ResidentBatches``) with one thing changed, timed by
duration: warm-up steps, then rounds of at least ``--round-s`` seconds; the figure is the
median round, ``std`` the spread. ``train_tflops`` is the counted FLOPs per image times the
rate; ``train_pct_of_gemm`` its share of the same dtype's n x n GEMM rate measured in the
same process, the practical limit of a conv-and-matmul step on this CPU.

Rows go to ``results/cpu_step/<isa>/cpu_step.{csv,md}``, one folder per ISA class (an AMX
Xeon and an AVX2 EPYC differ 1,000x in bf16, and their rows must not replace each other).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import re
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from benchmarks.protocol.results import RESULTS_DIR, write_results
from benchmarks.protocol.results_io import write_atomic
from benchmarks.protocol.row import ResultRow
from benchmarks.throughput.timing import dcgan_flops
from benchmarks.throughput.workloads import TrainLoop, profile_summary
from dcgan_ref.models import get_architecture
from dcgan_ref.runtime.errors import UserError, run_cli
from dcgan_ref.runtime.hardware import cpu_isa, native_bf16
from dcgan_ref.runtime.limits import timed_gemm_tflops
from dcgan_ref.runtime.tracking import provenance
from dcgan_ref.step import StepSettings, make_step

PROTOCOL = "cpu_step"
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Setting:
    """One way to run the step on a CPU."""

    bf16: bool = False
    channels_last: bool = False
    onednn: bool = True
    compiled: bool = False

    @property
    def name(self) -> str:
        parts = ["bf16" if self.bf16 else "fp32"] + (["channels_last"] if self.channels_last else []) + (
            [] if self.onednn else ["oneDNN off"]) + (["torch.compile"] if self.compiled else [])
        return ", ".join(parts)


SETTINGS = (
    Setting(),
    Setting(onednn=False),
    Setting(channels_last=True),
    Setting(channels_last=True, compiled=True),
    Setting(bf16=True),
    Setting(bf16=True, channels_last=True),  # what gan_run trains with where bf16 is native
    Setting(bf16=True, channels_last=True, compiled=True),
)


@dataclass
class Measured:
    setting: Setting
    img_per_s: list[float]        # one per timed round
    steps: int                    # timed steps in all
    timed_s: float
    warmup_s: float               # includes compilation for a compiled setting


def isa_slug() -> str:
    """``avx-512-amx``, ``avx2``: the folder one ISA class's rows live in."""
    return re.sub(r"[^a-z0-9]+", "-", cpu_isa().lower()).strip("-")


@contextlib.contextmanager
def _onednn(enabled: bool) -> Iterator[None]:
    with warnings.catch_warnings():  # flags() also resets oneDNN's TF32 switch, which warns on CPU-only builds
        warnings.simplefilter("ignore", UserWarning)
        with torch.backends.mkldnn.flags(enabled=enabled):
            yield


def train_loop(arch: str, batch: int, setting: Setting) -> TrainLoop:
    """The trainer's step under ``setting`` (a compiled setting wraps G and D in ``torch.compile``)."""
    loop = TrainLoop(arch, batch, StepSettings(bf16=setting.bf16, channels_last=setting.channels_last), CPU)
    if setting.compiled:
        s = loop.setup
        loop.step = make_step(torch.compile(s.g), torch.compile(s.d), s.opt_g, s.opt_d, setting.bf16)
    return loop


def measure(arch: str, batch: int, setting: Setting, *, warmup: int, rounds: int, round_s: float,
            log=print) -> Measured:
    """Time ``setting``'s step: ``warmup`` untimed steps, then ``rounds`` rounds of whole steps,
    each at least ``round_s`` seconds."""
    with _onednn(setting.onednn):
        loop = train_loop(arch, batch, setting)
        t0 = time.perf_counter()
        for _ in range(warmup):
            loop()
        warmup_s = time.perf_counter() - t0
        rates, steps, timed = [], 0, 0.0
        for _ in range(rounds):
            n, t0 = 0, time.perf_counter()
            while True:
                loop()
                n += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= round_s:
                    break
            rates.append(n * batch / elapsed)
            steps, timed = steps + n, timed + elapsed
    if not bool(torch.isfinite(loop.loss_sum).all()):
        raise RuntimeError(f"{arch} ({setting.name}): non-finite losses while timing")
    m = Measured(setting, rates, steps, timed, warmup_s)
    log(f"  {setting.name:<38} {statistics.median(rates):8.1f} img/s  ({steps} steps in {timed:.0f} s; "
        f"warm-up {warmup_s:.0f} s)")
    return m


def build_rows(measured: list[Measured], *, arch: str, batch: int, flops_per_img: int,
               gemm: dict[str, float], prov: dict[str, str], date: str, preset: str) -> list[ResultRow]:
    """Per setting: ``train_img_per_s``, ``train_tflops``, ``train_pct_of_gemm``; plus the GEMM rates."""
    common = dict(source="ours", protocol=PROTOCOL, dataset="synthetic uint8 images", preset=preset,
                  batch=batch, device=prov["device"], torch=prov["torch"], commit=prov["commit"],
                  dirty=prov["dirty"], date=date, seed=0)
    rows = []
    for dtype, rate in gemm.items():
        # keyed by the architecture's run: a second --arch run must not replace the rate the first was measured against
        rows.append(ResultRow(**common, extractor=arch, classifier=f"{dtype} GEMM",
                              metric="limit_gemm_tflops", value=rate,
                              notes="best of 5 n x n products, n = 2048, in this process"))
    for m in measured:
        dtype = "bf16" if m.setting.bf16 else "fp32"
        tflops = [r * flops_per_img / 1e12 for r in m.img_per_s]
        series = {"train_img_per_s": m.img_per_s, "train_tflops": tflops,
                  "train_pct_of_gemm": [100 * t / gemm[dtype] for t in tflops]}
        notes = (f"{m.steps} steps timed in {m.timed_s:.0f} s after a {m.warmup_s:.0f} s warm-up"
                 + (" (includes compilation)" if m.setting.compiled else "")
                 + f"; {flops_per_img / 1e9:.2f} GFLOP per image; % of the {dtype} GEMM rate "
                 f"{gemm[dtype]:.2f} TFLOP/s")
        for metric, values in series.items():
            rows.append(ResultRow(**common, extractor=arch, classifier=m.setting.name, metric=metric,
                                  value=statistics.median(values),
                                  std=statistics.stdev(values) if len(values) > 1 else None,
                                  n_draws=len(values), wall_s=m.timed_s + m.warmup_s, notes=notes))
    return rows


def main(argv: list[str] | None = None) -> list[ResultRow]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput.cpu_step",
                                description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--arch", default="imagenet32")
    p.add_argument("--batch", type=int, default=128, help="the trainer's batch (the paper's 128)")
    p.add_argument("--settings", help="setting names, separated by ';' (default: all; bf16 only where native)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--round-s", type=float, default=10.0, help="each timed round runs whole steps for this long")
    p.add_argument("--results-dir", help="default: results/cpu_step/<isa>/")
    p.add_argument("--profile", action="store_true",
                   help="also write a torch.profiler table of the fastest setting's step beside the rows")
    p.add_argument("--threads", type=int, help="torch threads (default: every core, as gan_run trains)")
    args = p.parse_args(argv)
    get_architecture(args.arch)
    if args.threads:
        torch.set_num_threads(args.threads)
    native = native_bf16(CPU)
    chosen = list(SETTINGS)
    if args.settings:
        wanted = [w.strip() for w in args.settings.split(";") if w.strip()]
        names = {s.name: s for s in SETTINGS}
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise UserError(f"unknown setting(s) {unknown}; known: {'; '.join(names)}")
        chosen = [names[w] for w in wanted]
    skipped = [s for s in chosen if s.bf16 and not native]
    chosen = [s for s in chosen if s not in skipped]
    prov = provenance(CPU)
    print(f"{args.arch} training step, batch {args.batch}, on {prov['device']}, {torch.get_num_threads()} threads")
    if skipped:
        print("  skipped (no native bf16 on this CPU, it would only time the emulation): "
              + "; ".join(s.name for s in skipped))
    gemm = {"fp32": timed_gemm_tflops(CPU, torch.float32, n=2048, calls=5)}
    if native and any(s.bf16 for s in chosen):
        gemm["bf16"] = timed_gemm_tflops(CPU, torch.bfloat16, n=2048, calls=5)
    print("  GEMM: " + ", ".join(f"{k} {v:.2f} TFLOP/s" for k, v in gemm.items()))
    flops = dcgan_flops(args.arch).train_step
    measured = [measure(args.arch, args.batch, s, warmup=args.warmup, rounds=args.rounds, round_s=args.round_s)
                for s in chosen]
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    preset = "paper" if args.batch == 128 else "smoke"  # only the trainer's batch is the trainer's speed
    rows = build_rows(measured, arch=args.arch, batch=args.batch, flops_per_img=flops, gemm=gemm,
                      prov=provenance(CPU), date=date, preset=preset)  # provenance at the end: the code as run
    for m in measured:
        dtype = "bf16" if m.setting.bf16 else "fp32"
        tf = statistics.median(m.img_per_s) * flops / 1e12
        print(f"  {m.setting.name:<38} {tf:.3f} TFLOP/s = {100 * tf / gemm[dtype]:.0f}% of the {dtype} GEMM rate")
    out = Path(args.results_dir) if args.results_dir else RESULTS_DIR / PROTOCOL / isa_slug()
    csv_path, _ = write_results(PROTOCOL, rows, out)
    print(f"wrote {csv_path}")
    if args.profile:
        fastest = max(measured, key=lambda m: statistics.median(m.img_per_s)).setting
        with _onednn(fastest.onednn):
            table = profile_summary(train_loop(args.arch, args.batch, fastest), CPU, steps=3,
                                    title=f"{args.arch} training step, batch {args.batch}, {fastest.name}")
        path = out / f"profile_{args.arch}.txt"
        write_atomic(path, table + "\n")
        print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    run_cli(main)
