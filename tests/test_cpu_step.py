"""The CPU training-step benchmark: what it times is the trainer's step, its rows add up, and
bf16 is never timed where the CPU only emulates it."""
from __future__ import annotations

import pytest
import torch

from benchmarks.protocol.results import read_results
from benchmarks.throughput import cpu_step
from dcgan_ref.runtime.errors import UserError

TINY = ["--arch", "svhn32", "--batch", "4", "--warmup", "1", "--rounds", "2", "--round-s", "0.05", "--threads", "1"]


def _run(tmp_path, *extra: str) -> list:
    return cpu_step.main([*TINY, "--results-dir", str(tmp_path), *extra])


def test_rows_are_consistent_with_the_counted_flops_and_the_gemm_rate(tmp_path):
    rows = _run(tmp_path, "--settings", "fp32;fp32, oneDNN off")
    by = {(r.extractor, r.classifier, r.metric): r for r in rows}
    gemm = by[("svhn32", "fp32 GEMM", "limit_gemm_tflops")].value
    flops = cpu_step.dcgan_flops("svhn32").train_step
    for setting in ("fp32", "fp32, oneDNN off"):
        rate = by[("svhn32", setting, "train_img_per_s")]
        assert rate.value > 0 and rate.n_draws == 2 and rate.batch == 4
        tflops = by[("svhn32", setting, "train_tflops")].value
        assert tflops == pytest.approx(rate.value * flops / 1e12, rel=1e-9)
        assert by[("svhn32", setting, "train_pct_of_gemm")].value == pytest.approx(100 * tflops / gemm, rel=1e-9)
    assert {r.preset for r in rows} == {"smoke"}  # not the trainer's batch: never a "paper" speed
    written = read_results(tmp_path / "cpu_step.csv")
    assert len(written) == len(rows) and set(written["device"]) == {rows[0].device}


def test_bf16_is_skipped_not_timed_where_the_cpu_has_no_native_bf16(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cpu_step, "native_bf16", lambda device: False)
    timed = []
    real_measure = cpu_step.measure
    monkeypatch.setattr(cpu_step, "measure", lambda arch, batch, s, **kw: timed.append(s) or real_measure(
        arch, batch, s, **kw))
    rows = _run(tmp_path, "--settings", "fp32;bf16, channels_last")
    assert [s.name for s in timed] == ["fp32"]
    assert not any("bf16" in r.classifier for r in rows)  # no bf16 GEMM rate either
    assert [r.classifier for r in rows if r.metric == "limit_gemm_tflops"] == ["fp32 GEMM"]
    assert "skipped (no native bf16" in capsys.readouterr().out


def test_a_setting_changes_only_what_it_names():
    loop = cpu_step.train_loop("svhn32", 4, cpu_step.Setting(channels_last=True))
    conv = next(p for p in loop.setup.d.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert loop.data.next().is_contiguous(memory_format=torch.channels_last)
    assert not loop.setup.settings.bf16
    with cpu_step._onednn(False):
        assert not torch.backends.mkldnn.enabled
    assert torch.backends.mkldnn.enabled  # restored after


def test_an_unknown_setting_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="unknown setting.*known: fp32"):
        _run(tmp_path, "--settings", "fp16")
    assert not (tmp_path / "cpu_step.csv").exists()


def test_the_report_shows_each_setting_against_its_own_processs_gemm_rate(tmp_path):
    from benchmarks.protocol.results import write_results
    from benchmarks.report.render import _cpu_step

    prov = {"device": "cpu: Some CPU (2 cores, AVX2)", "torch": "t", "commit": "abc1234", "dirty": "False"}
    measured = [cpu_step.Measured(cpu_step.Setting(), [10.0, 12.0, 11.0], 9, 30.0, 5.0)]
    for arch, gemm in (("imagenet32", 0.5), ("svhn32", 0.25)):  # two runs: the second's GEMM row replaces the first's
        rows = cpu_step.build_rows(measured, arch=arch, batch=128, flops_per_img=int(5e9), gemm={"fp32": gemm},
                                   prov=prov, date="2026-12-07", preset="paper")
        write_results(cpu_step.PROTOCOL, rows, tmp_path / "cpu_step" / "avx2")
    gemm_rows = read_results(tmp_path / "cpu_step" / "avx2" / "cpu_step.csv").query("metric == 'limit_gemm_tflops'")
    assert sorted(gemm_rows["value"]) == [0.25, 0.5]  # each run keeps the rate it was measured against
    text = "\n".join(_cpu_step(tmp_path))
    assert "| imagenet32, batch 128 | fp32 " in text and "11% of 0.50 TFLOP/s (fp32)" in text  # 11 img/s x 5 GFLOP
    assert "22% of 0.25 TFLOP/s (fp32)" in text and "Some CPU (2 cores, AVX2)" in text
