"""The CUDA-graphed training step and the throughput suite's bookkeeping.

On a CPU: the factory falls back to the eager step; the graph's plumbing (static input
buffers, warm-up with the training state restored, cloned outputs) runs with an eager call
in place of the replay and must match the eager step bit for bit; FLOP counts match the
architecture's arithmetic; the rows builder follows the results schema; a CPU throughput
run writes nothing.  On a GPU: the graphed step matches the eager one (losses, weights,
optimiser state), syncs nothing per step, and survives checkpoint/resume.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmarks import throughput as tp
from benchmarks.results import COLUMNS, RESULTS_DIR
from dcgan_ref.fast_step import GraphedStep, make_capturable, make_graphed_step, snapshot_training_state
from dcgan_ref.models import build_gan, get_architecture
from dcgan_ref.train import TrainConfig, make_step, train

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")


# ----------------------------------------------------------------------------- helpers
def gan(arch: str = "svhn32", device: str = "cpu", *, channels_last: bool = False, capturable: bool = False):
    """G, D and their Adam optimisers, set up as ``train`` does (fused on CUDA)."""
    g, d = build_gan(arch, 0)
    g, d = g.to(device), d.to(device)
    if channels_last:
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
    fused = torch.device(device).type == "cuda"
    opts = [torch.optim.Adam(m.parameters(), 2e-4, betas=(0.5, 0.999), fused=fused, capturable=capturable)
            for m in (g, d)]
    return g, d, opts[0], opts[1]


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


# ----------------------------------------------------------------------------- CPU: fallback and plumbing
def test_factory_falls_back_to_the_eager_step_on_cpu():
    data = batches("svhn32", 3, 4)
    eager_models, fast_models = gan(), gan()
    eager = make_step(*eager_models, bf16=False)
    fast = make_graphed_step(*fast_models, bf16=False)
    assert not isinstance(fast, GraphedStep)
    losses_e = torch.stack([eager(r, z) for r, z in data])
    losses_f = torch.stack([fast(r, z) for r, z in data])
    assert torch.equal(losses_e, losses_f)
    assert_same(state_tensors(*eager_models), state_tensors(*fast_models))


@pytest.mark.parametrize("channels_last", [False, True])
def test_graph_plumbing_matches_the_eager_step_exactly(channels_last):
    """Static buffers + warm-up + restore + cloned output: the same training, bit for bit."""
    data = batches("svhn32", 3, 4, channels_last=channels_last)
    eager_models = gan(channels_last=channels_last)
    fast_models = gan(channels_last=channels_last)
    eager = make_step(*eager_models, bf16=False)
    fast = GraphedStep(*fast_models, bf16=False, warmup_steps=2)
    assert not fast.use_graph and not fast.captured

    losses_e = [eager(r, z) for r, z in data]
    losses_f = [fast(r, z) for r, z in data]
    assert fast.captured
    # the static input keeps the first batch's layout
    assert fast._static_real.is_contiguous(memory_format=torch.channels_last) == channels_last
    # each call returned its own tensor, still holding that step's losses
    assert len({t.data_ptr() for t in losses_f}) == len(losses_f)
    assert torch.equal(torch.stack(losses_e), torch.stack(losses_f))
    assert_same(state_tensors(*eager_models), state_tensors(*fast_models))


def test_graphed_step_rejects_a_batch_of_another_shape():
    fast = GraphedStep(*gan(), bf16=False, warmup_steps=1)
    (r, z), (r2, z2) = batches("svhn32", 1, 4)[0], batches("svhn32", 1, 2)[0]
    fast(r, z)
    with pytest.raises(ValueError, match="captured for real_u8"):
        fast(r2, z2)


def test_graphed_step_needs_adam():
    g, d = build_gan("svhn32", 0)
    with pytest.raises(TypeError, match="Adam"):
        GraphedStep(g, d, torch.optim.SGD(g.parameters(), 0.1), torch.optim.SGD(d.parameters(), 0.1), bf16=False)


def test_restore_undoes_warmup_for_fresh_and_resumed_optimisers():
    """Fresh Adam state comes back as zeros; existing state, weights and BN stats as they were."""
    models = gan()
    step = make_step(*models, bf16=False)
    data = batches("svhn32", 4, 4)
    fresh_restore = snapshot_training_state(models[:2], models[2:])
    step(*data[0])
    fresh_restore()
    for opt in models[2:]:
        assert all(bool((t == 0).all()) for s in opt.state.values() for t in s.values())
    twin = gan()
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
    g, d, opt_g, opt_d = gan()
    step = make_step(g, d, opt_g, opt_d, bf16=False)
    step(*batches("svhn32", 1, 2)[0])
    saved = opt_d.state_dict()
    fresh = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    fresh.load_state_dict(saved)  # groups take the saved flags: capturable False
    assert not fresh.param_groups[0]["capturable"]
    make_capturable(fresh)
    assert all(group["capturable"] for group in fresh.param_groups)
    for p, s in fresh.state.items():
        assert s["step"].dtype == torch.float32 and s["step"].device == p.device and float(s["step"]) == 1.0


def test_train_with_cuda_graph_flag_on_cpu_is_the_eager_run(tmp_path):
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(arch="svhn32", steps=3, batch_size=8, log_every=1, ckpt_every=100, sample_every=100)
    quiet = lambda *_: None  # noqa: E731
    a = train(cfg, images, tmp_path / "a", device=torch.device("cpu"), log=quiet)
    b = train(dataclasses.replace(cfg, cuda_graph=True), images, tmp_path / "b", device=torch.device("cpu"), log=quiet)
    assert a.last_losses == b.last_losses
    assert_same(list(a.g.state_dict().values()) + list(a.d.state_dict().values()),
                list(b.g.state_dict().values()) + list(b.d.state_dict().values()))


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
    weight gradient; no input gradient for the first layer fed by data (images, z).
    """
    d_conv1 = conv_flops(3, 64, 5, 16)
    d_convs = d_conv1 + conv_flops(64, 128, 5, 8) + conv_flops(128, 256, 5, 4)
    d = d_convs + 2 * 4096
    g_lin = 2 * 100 * 4096
    g = g_lin + conv_flops(256, 128, 5, 4) + conv_flops(128, 64, 5, 8) + conv_flops(64, 3, 5, 16)
    d_fwd_bwd_on_data = d + (d - d_conv1) + d   # forward, input grads past conv1, weight grads
    d_fwd_bwd_on_fake = d + d + d               # G's update also back-props through D's input
    g_bwd = (g - g_lin) + g                     # input grads past the z layer, weight grads
    train = g + 2 * d_fwd_bwd_on_data + d_fwd_bwd_on_fake + g_bwd
    return train, g, d_convs


def test_flop_counter_one_conv_layer():
    conv = torch.nn.Conv2d(64, 128, 5, 2, 2, bias=False)
    x = torch.randn(3, 64, 16, 16)
    assert tp.count_flops(lambda: conv(x)) == 3 * conv_flops(64, 128, 5, 8)


def test_svhn32_flops_per_image():
    train_step, sample, extract = svhn32_analytic()
    assert (train_step, sample, extract) == (655_433_728, 55_705_600, 54_886_400)  # pinned
    assert tp.dcgan_flops("svhn32") == tp.ArchFlops(train_step, sample, extract)


# ----------------------------------------------------------------------------- rows and the CPU run
def test_peak_table():
    assert tp.peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert tp.peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert tp.peak_bf16_tflops("NVIDIA H200") == 989.4
    assert tp.peak_bf16_tflops("cpu (x86_64, 2 cores)") is None


def test_rows_follow_the_results_schema():
    figures = [
        tp.Figure("train_img_per_s", [30_000.0, 31_000.0, 29_000.0], extractor="imagenet32", batch=128,
                  flops=6e9, wall_s=1.2, notes="bf16"),
        tp.Figure("naive_train_img_per_s", [10_000.0], extractor="imagenet32", batch=128, flops=6e9),
        tp.Figure("train_speedup_vs_naive_x", [3.0], extractor="imagenet32", batch=128),
        tp.Figure("svm_solve_s", [0.5], extractor="imagenet32", batch=50_000, flops=1e12, classifier="L2-SVM",
                  dataset="CIFAR-10 (JPEG copy)", feature_dim=28_672),
    ]
    prov = {"torch": "2.11.0", "commit": "abc", "dirty": "False"}
    rows = tp.build_rows(figures, device="NVIDIA H100 80GB HBM3", peak_tflops=1000.0, preset="paper", provenance=prov)
    assert all(list(r) == COLUMNS for r in rows)
    assert {r["device"] for r in rows} == {"NVIDIA H100 80GB HBM3"}
    assert {r["protocol"] for r in rows} == {"throughput"} and {r["source"] for r in rows} == {"ours"}
    by = {(r["metric"], r["batch"]): r for r in rows}
    assert set(by) == {("train_img_per_s", 128), ("train_tflops", 128), ("train_mfu_pct", 128),
                       ("naive_train_img_per_s", 128), ("naive_train_tflops", 128), ("naive_train_mfu_pct", 128),
                       ("train_speedup_vs_naive_x", 128),
                       ("svm_solve_s", 50_000), ("svm_solve_tflops", 50_000), ("svm_solve_mfu_pct", 50_000)}
    assert by["train_img_per_s", 128]["value"] == 30_000.0 and by["train_img_per_s", 128]["n_draws"] == 3
    assert by["train_tflops", 128]["value"] == pytest.approx(180.0)
    assert by["train_mfu_pct", 128]["value"] == pytest.approx(18.0)
    assert by["svm_solve_tflops", 50_000]["value"] == pytest.approx(2.0)
    assert by["train_img_per_s", 128]["extractor"] == "imagenet32"
    # unknown device: no MFU rows
    rows = tp.build_rows(figures, device="cpu", peak_tflops=None, preset="smoke", provenance=prov)
    assert not any(r["metric"].endswith("_mfu_pct") for r in rows)


def test_cpu_run_writes_nothing(tmp_path, monkeypatch):
    tiny = dataclasses.replace(tp.CPU_SIZES, batches=(2,), calls=1, warmup=0, repeats=1, extract_batches=1,
                               naive_calls=1, naive_warmup=0, kmeans_k=16, kmeans_batches=(2,),
                               kmeans_fit_patches=200, svm_rows=64, svm_dim=256, svm_sklearn_rows=32)
    monkeypatch.setattr(tp, "CPU_SIZES", tiny)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = sorted(RESULTS_DIR.iterdir()) if RESULTS_DIR.exists() else []
    out = tmp_path / "out"
    rows = tp.main(["--device", "cpu", "--archs", "svhn32", "--naive-workers", "0", "--out-dir", str(out)])
    assert not out.exists()
    assert (sorted(RESULTS_DIR.iterdir()) if RESULTS_DIR.exists() else []) == before
    assert list(cwd.iterdir()) == []  # no MLflow store, no stray files
    assert rows and all(r["device"].startswith("cpu") for r in rows)
    metrics = {r["metric"] for r in rows}
    assert {"train_img_per_s", "naive_train_img_per_s", "train_speedup_vs_naive_x", "sample_img_per_s",
            "extract_img_per_s", "svm_solve_s", "sklearn_svm_solve_s", "train_tflops"} <= metrics


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
    eager_models = gan(arch, "cuda", channels_last=channels_last)
    fast_models = gan(arch, "cuda", channels_last=channels_last, capturable=True)
    eager = make_step(*eager_models, bf16=bf16)
    fast = make_graphed_step(*fast_models, bf16=bf16)
    assert isinstance(fast, GraphedStep) and fast.use_graph
    losses_e = torch.stack([eager(r, z) for r, z in data])
    losses_f = torch.stack([fast(r, z) for r, z in data])
    assert fast.graph is not None
    tol = dict(rtol=2e-2, atol=2e-3) if bf16 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses_f, losses_e, **tol)
    assert_same(state_tensors(*eager_models), state_tensors(*fast_models), exact=False, **tol)


@needs_cuda
def test_cuda_graph_step_does_not_sync():
    models = gan("svhn32", "cuda", capturable=True)
    fast = make_graphed_step(*models, bf16=True)
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
