"""The CUDA-graphed training step and the throughput suite's bookkeeping.

On a CPU: the graph flag is ignored off CUDA; the graphed step rejects a batch of another
shape and non-Adam optimisers; the warm-up's snapshot/restore puts the training state back
exactly; ``make_capturable`` fixes a loaded optimiser; FLOP counts match the
architecture's arithmetic; the rows builder follows the results schema; a CPU throughput
run writes nothing and prints no profiler error.  On a GPU: the graphed step matches the
eager one (losses, weights, optimiser state), keeps the batch layout, returns its own
tensor per call, syncs nothing per step, and survives checkpoint/resume.
"""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

from benchmarks.protocol.results import RESULTS_DIR, write_results
from benchmarks.protocol.row import COLUMNS, ResultRow
from benchmarks.throughput import cli, suite, timing
from dcgan_ref.fast_step import GraphedStep, make_capturable, snapshot_training_state
from dcgan_ref.models import build_gan, get_architecture
from dcgan_ref.step import GanSetup, StepSettings, make_adam, make_step
from dcgan_ref.train import TrainConfig, train

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")


# ----------------------------------------------------------------------------- helpers
def gan(arch: str = "svhn32", device: str = "cpu", *, bf16: bool = False, channels_last: bool = False,
        cuda_graph: bool = False) -> GanSetup:
    """G, D and their Adam optimisers, set up as training sets them up."""
    return GanSetup.create(arch, StepSettings(bf16, channels_last, cuda_graph), torch.device(device))


def parts(setup: GanSetup):
    return setup.g, setup.d, setup.opt_g, setup.opt_d


def batches(arch: str, n: int, batch: int, device: str = "cpu", *, channels_last: bool = False):
    a = get_architecture(arch)
    gen = torch.Generator(device).manual_seed(123)
    out = []
    for _ in range(n):
        real = torch.randint(0, 256, (batch, 3, a.image_size, a.image_size), dtype=torch.uint8, device=device,
                             generator=gen)
        if channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        out.append((real, a.sample_z(batch, device, gen)))
    return out


def state_tensors(g, d, opt_g, opt_d) -> list[torch.Tensor]:
    """Every tensor that training changes: parameters, buffers, Adam state."""
    out = [t.detach() for m in (g, d) for t in (*m.parameters(), *m.buffers())]
    for opt in (opt_g, opt_d):
        for group in opt.param_groups:
            for p in group["params"]:
                out += [opt.state[p][k].detach() for k in ("step", "exp_avg", "exp_avg_sq")]
    return out


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor], exact: bool = True, **tol) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if exact:
            assert torch.equal(x.float().cpu(), y.float().cpu())
        else:
            torch.testing.assert_close(x.float().cpu(), y.float().cpu(), **tol)


# ----------------------------------------------------------------------------- CPU: the graphed step's checks and state
def test_cuda_graph_flag_is_ignored_off_cuda():
    setup = gan(cuda_graph=True)
    assert not setup.graphed
    assert not isinstance(setup.make_step(), GraphedStep)
    assert not setup.opt_d.param_groups[0]["capturable"]


def test_graphed_step_rejects_a_batch_of_another_shape():
    setup = gan()
    fast = GraphedStep(make_step(*parts(setup), bf16=False), (setup.g, setup.d), (setup.opt_g, setup.opt_d),
                       warmup_steps=1)
    (r, z), (r2, z2) = batches("svhn32", 1, 4)[0], batches("svhn32", 1, 2)[0]
    fast(r, z)
    with pytest.raises(ValueError, match="captured for real_u8"):
        fast(r2, z2)


def test_graphed_step_needs_adam():
    g, d = build_gan("svhn32", 0)
    opt_g, opt_d = torch.optim.SGD(g.parameters(), 0.1), torch.optim.SGD(d.parameters(), 0.1)
    with pytest.raises(TypeError, match="Adam"):
        GraphedStep(make_step(g, d, opt_g, opt_d, bf16=False), (g, d), (opt_g, opt_d))


def test_restore_undoes_warmup_for_fresh_and_resumed_optimisers():
    """Fresh Adam state comes back as zeros; existing state, weights and BN stats as they were."""
    models = parts(gan())
    step = make_step(*models, bf16=False)
    data = batches("svhn32", 4, 4)
    fresh_restore = snapshot_training_state(models[:2], models[2:])
    step(*data[0])
    fresh_restore()
    for opt in models[2:]:
        assert all(bool((t == 0).all()) for s in opt.state.values() for t in s.values())
    twin = parts(gan())
    assert_same([t for m in models[:2] for t in (*m.parameters(), *m.buffers())],
                [t for m in twin[:2] for t in (*m.parameters(), *m.buffers())])

    step(*data[1])  # now with state: snapshot mid-training, run on, restore
    before = [t.clone() for t in state_tensors(*models)]
    restore = snapshot_training_state(models[:2], models[2:])
    for r, z in data[2:]:
        step(r, z)
    assert not all(torch.equal(a, b) for a, b in zip(before, state_tensors(*models)))
    restore()
    assert_same(before, state_tensors(*models))


def test_make_capturable_after_loading_a_non_capturable_state():
    g, d, opt_g, opt_d = parts(gan())
    step = make_step(g, d, opt_g, opt_d, bf16=False)
    step(*batches("svhn32", 1, 2)[0])
    saved = opt_d.state_dict()
    fresh = make_adam(d)
    fresh.load_state_dict(saved)  # groups take the saved flags: capturable False
    assert not fresh.param_groups[0]["capturable"]
    make_capturable(fresh)
    assert all(group["capturable"] for group in fresh.param_groups)
    for p, s in fresh.state.items():
        assert s["step"].dtype == torch.float32 and s["step"].device == p.device and float(s["step"]) == 1.0


# ----------------------------------------------------------------------------- FLOP counts
def conv_flops(c_in: int, c_out: int, k: int, out_hw: int) -> int:
    """One image through a conv: a multiply-add (2 FLOPs) per weight per output position."""
    return 2 * c_in * c_out * k * k * out_hw * out_hw


def svhn32_analytic() -> tuple[int, int, int]:
    """(train step, sample, extract) FLOPs per image of svhn32, from its layer shapes.

    D: 3->64->128->256 5x5 stride-2 convs (32->16->8->4), a 4096->1 linear head.
    G: a 100->4096 linear, then transposed convs mirroring D (FLOPs counted on their input
    grid: 256->128 at 4x4, 128->64 at 8x8, 64->3 at 16x16, each one 5x5 weight per input
    position).  A backward costs a forward for the input gradient and a forward for the
    weight gradient; no input gradient for the first layer fed by data (images, z), and no
    weight gradient for D in G's update (``make_step`` freezes D there).
    """
    d_conv1 = conv_flops(3, 64, 5, 16)
    d_convs = d_conv1 + conv_flops(64, 128, 5, 8) + conv_flops(128, 256, 5, 4)
    d = d_convs + 2 * 4096
    g_lin = 2 * 100 * 4096
    g = g_lin + conv_flops(256, 128, 5, 4) + conv_flops(128, 64, 5, 8) + conv_flops(64, 3, 5, 16)
    d_fwd_bwd_on_data = d + (d - d_conv1) + d   # forward, input grads past conv1, weight grads
    d_fwd_bwd_for_g = d + d                     # G's update: forward, input grads only (D frozen)
    g_bwd = (g - g_lin) + g                     # input grads past the z layer, weight grads
    train = g + 2 * d_fwd_bwd_on_data + d_fwd_bwd_for_g + g_bwd
    return train, g, d_convs


def test_flop_counter_one_conv_layer():
    conv = torch.nn.Conv2d(64, 128, 5, 2, 2, bias=False)
    x = torch.randn(3, 64, 16, 16)
    assert timing.count_flops(lambda: conv(x)) == 3 * conv_flops(64, 128, 5, 8)


def test_svhn32_flops_per_image():
    assert timing.dcgan_flops("svhn32") == timing.ArchFlops(*svhn32_analytic())


# ----------------------------------------------------------------------------- rows and the CPU run
def test_peak_table():
    assert timing.peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert timing.peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert timing.peak_bf16_tflops("NVIDIA H200") == 989.4
    assert timing.peak_bf16_tflops("cpu (x86_64, 2 cores)") is None


def test_rows_follow_the_results_schema(tmp_path):
    figures = [
        timing.Figure("train_img_per_s", [30_000.0, 31_000.0, 29_000.0], extractor="imagenet32", batch=128,
                      flops=6e9, wall_s=1.2, notes="bf16"),
        timing.Figure("naive_train_img_per_s", [10_000.0], extractor="imagenet32", batch=128, flops=6e9),
        timing.Figure("train_speedup_vs_naive_x", [3.0], extractor="imagenet32", batch=128),
        timing.Figure("svm_solve_s", [0.5], extractor="imagenet32", batch=50_000, flops=1e12, classifier="L2-SVM",
                      dataset="CIFAR-10 (JPEG copy)", feature_dim=28_672),
    ]
    prov = {"torch": "2.11.0", "commit": "abc", "dirty": "False"}
    rows = suite.build_rows(figures, device="NVIDIA H100 80GB HBM3", peak_tflops=1000.0, preset="paper",
                            provenance=prov, mlflow_run_id="run1", date="2026-01-01")
    assert all(isinstance(r, ResultRow) for r in rows)
    assert {(r.device, r.protocol, r.source, r.preset, r.torch, r.commit, r.dirty, r.mlflow_run_id, r.date)
            for r in rows} == {("NVIDIA H100 80GB HBM3", "throughput", "ours", "paper", "2.11.0", "abc", "False",
                                "run1", "2026-01-01")}
    by = {(r.metric, r.batch): r for r in rows}
    assert len(by) == len(rows) == 10
    assert set(by) == {("train_img_per_s", 128), ("train_tflops", 128), ("train_mfu_pct", 128),
                       ("naive_train_img_per_s", 128), ("naive_train_tflops", 128), ("naive_train_mfu_pct", 128),
                       ("train_speedup_vs_naive_x", 128),
                       ("svm_solve_s", 50_000), ("svm_solve_tflops", 50_000), ("svm_solve_mfu_pct", 50_000)}
    train_row = by["train_img_per_s", 128]
    assert (train_row.value, train_row.n_draws, train_row.std) == (30_000.0, 3, 1000.0)
    assert (train_row.extractor, train_row.wall_s, train_row.notes) == ("imagenet32", 1.2, "bf16")
    assert by["naive_train_img_per_s", 128].std is None  # one repeat: no spread
    assert by["train_tflops", 128].value == pytest.approx(180.0)
    assert by["train_mfu_pct", 128].value == pytest.approx(18.0)
    assert by["svm_solve_tflops", 50_000].value == pytest.approx(2.0)
    svm = by["svm_solve_s", 50_000]
    assert (svm.classifier, svm.dataset, svm.feature_dim) == ("L2-SVM", "CIFAR-10 (JPEG copy)", 28_672)
    # the rows go through the results writer as they are
    csv_path, _ = write_results("throughput", rows, tmp_path)
    written = pd.read_csv(csv_path)
    assert list(written.columns) == COLUMNS and len(written[written["source"] == "ours"]) == len(rows)
    # unknown device: no MFU rows
    rows = suite.build_rows(figures, device="cpu", peak_tflops=None, preset="smoke", provenance=prov)
    assert len(rows) == 7 and not any(r.metric.endswith("_mfu_pct") for r in rows)


def test_cpu_run_writes_nothing(tmp_path, monkeypatch, capfd):
    tiny = dataclasses.replace(timing.CPU_SIZES, batches=(2,), calls=1, warmup=0, repeats=1, extract_batches=1,
                               naive_calls=1, naive_warmup=0, kmeans_k=16, kmeans_batches=(2,),
                               kmeans_fit_patches=200, svm_rows=64, svm_dim=256, svm_sklearn_rows=32)
    monkeypatch.setattr(cli, "CPU_SIZES", tiny)
    monkeypatch.delenv("KINETO_LOG_LEVEL", raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = sorted(RESULTS_DIR.iterdir()) if RESULTS_DIR.exists() else []
    out = tmp_path / "out"
    rows = cli.main(["--device", "cpu", "--archs", "svhn32", "--naive-workers", "0", "--out-dir", str(out)])
    assert not out.exists()
    assert (sorted(RESULTS_DIR.iterdir()) if RESULTS_DIR.exists() else []) == before
    assert list(cwd.iterdir()) == []  # no MLflow store, no stray files
    assert rows and all(isinstance(r, ResultRow) and r.device.startswith("cpu") for r in rows)
    metrics = {r.metric for r in rows}
    assert {"train_img_per_s", "naive_train_img_per_s", "train_speedup_vs_naive_x", "sample_img_per_s",
            "extract_img_per_s", "svm_solve_s", "sklearn_svm_solve_s", "train_tflops"} <= metrics
    printed = capfd.readouterr()
    assert "no device kernels recorded (CPU run)" in printed.out  # the profile ran and was printed
    assert "ERROR" not in printed.out + printed.err


# ----------------------------------------------------------------------------- GPU: the real graph
@pytest.fixture
def cuda_deterministic():
    old = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    yield
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = old


@needs_cuda
@pytest.mark.parametrize("arch,bf16,channels_last", [("svhn32", False, False), ("imagenet32", True, True)])
def test_cuda_graph_matches_eager(arch, bf16, channels_last, cuda_deterministic):
    data = batches(arch, 6, 64, "cuda", channels_last=channels_last)
    eager_setup = gan(arch, "cuda", bf16=bf16, channels_last=channels_last)
    fast_setup = gan(arch, "cuda", bf16=bf16, channels_last=channels_last, cuda_graph=True)
    eager, fast = eager_setup.make_step(), fast_setup.make_step()
    assert not isinstance(eager, GraphedStep)
    assert isinstance(fast, GraphedStep) and fast.use_graph and not fast.captured
    losses_e = [eager(r, z) for r, z in data]
    losses_f = [fast(r, z) for r, z in data]
    assert fast.graph is not None
    # the static input keeps the first batch's layout
    assert fast._static_real.is_contiguous(memory_format=torch.channels_last) == channels_last
    # each call returned its own tensor, still holding that step's losses
    assert len({t.data_ptr() for t in losses_f}) == len(losses_f)
    tol = dict(rtol=2e-2, atol=2e-3) if bf16 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.stack(losses_f), torch.stack(losses_e), **tol)
    assert_same(state_tensors(*parts(eager_setup)), state_tensors(*parts(fast_setup)), exact=False, **tol)


@needs_cuda
def test_cuda_graph_step_does_not_sync():
    fast = gan("svhn32", "cuda", bf16=True, cuda_graph=True).make_step()
    assert isinstance(fast, GraphedStep)
    data = batches("svhn32", 4, 64, "cuda")
    total = fast(*data[0])  # capture (synchronises by design)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for r, z in data[1:]:
            total = total + fast(r, z)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(total).all()


@needs_cuda
def test_train_resume_with_cuda_graph(tmp_path, cuda_deterministic):
    """6 graphed steps in one go == 3 graphed steps, checkpoint, resume for 3 more (capture after load)."""
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(arch="svhn32", steps=6, batch_size=64, bf16=True, channels_last=True, cuda_graph=True,
                      log_every=1, ckpt_every=3, sample_every=100)
    quiet = lambda *_: None  # noqa: E731
    cuda = torch.device("cuda")
    full = train(cfg, images, tmp_path / "full", device=cuda, log=quiet)
    train(dataclasses.replace(cfg, steps=3), images, tmp_path / "half", device=cuda, log=quiet)
    resumed = train(cfg, images, tmp_path / "half", device=cuda, resume=True, log=quiet)
    assert resumed.steps == 6
    a = list(full.g.state_dict().values()) + list(full.d.state_dict().values())
    b = list(resumed.g.state_dict().values()) + list(resumed.d.state_dict().values())
    assert_same(a, b, exact=False, rtol=2e-2, atol=2e-3)
    eager = train(dataclasses.replace(cfg, cuda_graph=False), images, tmp_path / "eager", device=cuda, log=quiet)
    c = list(eager.g.state_dict().values()) + list(eager.d.state_dict().values())
    assert_same(a, c, exact=False, rtol=2e-2, atol=2e-3)


def test_measured_limits_count_the_work_of_what_they_time(monkeypatch):
    """The GEMM rate is 2 n^3 FLOPs over the best time, the read rate bytes over the best time."""
    from dcgan_ref.runtime import limits as timing

    monkeypatch.setattr(timing, "time_calls", lambda fn, repeats, **kw: [0.02, 0.01, 0.03][:repeats])
    assert timing.timed_gemm_tflops(torch.device("cpu"), n=64) == 2 * 64**3 / 0.01 / 1e12
    assert timing.timed_read_gbps(torch.device("cpu"), mib=1) == 2**20 / 0.01 / 1e9
    monkeypatch.undo()
    timing._device_limits.cache_clear()
    limits = timing.device_limits(torch.device("cpu"))
    assert {"limit_gemm_fp32_tflops", "limit_read_gbps"} <= set(limits)
    assert all(v > 0 for v in limits.values())


def test_device_limits_skip_emulated_bf16_and_measure_once(monkeypatch):
    """No bf16 figure where bf16 is not native (it would time an emulation at ~1 GFLOP/s for
    minutes); the limits are measured once per process, whatever number of runs ask."""
    from dcgan_ref.runtime import limits as timing

    dtypes = []
    monkeypatch.setattr(timing, "timed_gemm_tflops", lambda device, dtype=torch.float32: dtypes.append(dtype) or 1.0)
    monkeypatch.setattr(timing, "timed_read_gbps", lambda device: 10.0)
    for native in (False, True):
        timing._device_limits.cache_clear()
        monkeypatch.setattr(timing, "native_bf16", lambda device: native)
        limits = [timing.device_limits(torch.device("cpu")) for _ in range(3)][-1]
        assert ("limit_gemm_bf16_tflops" in limits) is native
        assert "no native bf16" in timing.describe_limits(limits) or native
    assert dtypes == [torch.float32, torch.float32, torch.bfloat16]
    timing._device_limits.cache_clear()


def test_gemm_probe_is_sized_by_time_not_by_n(monkeypatch):
    """A product that takes seconds (bf16 emulated) stops the probe at the smallest size after one
    timed call; a fast one grows n until a call takes PROBE_CALL_S."""
    from dcgan_ref.runtime import limits as timing

    calls = []

    def fake(fn, *, repeats, **kw):
        calls.append(repeats)
        return [5.0] * repeats

    monkeypatch.setattr(timing, "time_calls", fake)
    timing.timed_gemm_tflops(torch.device("cpu"), torch.bfloat16)
    assert calls == [1]  # the first size's one call (and its warm-up): 10 s of 5-s calls, not 40
    seen = []

    def fast(fn, *, repeats, **kw):
        seen.append(fn().shape[0])
        return [1e-4 * (seen[-1] / 256) ** 3] * repeats

    monkeypatch.setattr(timing, "time_calls", fast)
    timing.timed_gemm_tflops(torch.device("cpu"))
    assert seen[0] == 256 and max(seen) > 256 and max(seen) <= 4096
