"""A hostile-input sweep: odd images, unsafe archives, foreign or code-carrying checkpoints,
signals, nonsense arguments. Each ends in one clear line and exit 2 (or, for images, in a
documented conversion), with nothing half-written."""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmarks import cifar10_probe, gan_run, reproduce, svhn_1000
from benchmarks.protocol import runner as protocol
from benchmarks.report import render as report
from benchmarks.studies import sensitivity
from dcgan_ref import train as train_mod
from dcgan_ref.datasets.loading import load_split
from dcgan_ref.runtime import checkpoint
from dcgan_ref.runtime.errors import DataError, UserError, run_cli
from dcgan_ref.train import TrainConfig, train
from tests.conftest import write_image_folder

REPO = Path(__file__).resolve().parents[1]


def _exit(main, argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        run_cli(main, argv)
    return e.value.code, capsys.readouterr().err


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def no_data_reads(monkeypatch):
    monkeypatch.setattr(protocol, "load_data", lambda *a, **k: pytest.fail("data was read"))


# ----------------------------------------------------------------------------- image kinds
def _folder_with(tmp_path: Path, name: str, blob: bytes) -> Path:
    root = write_image_folder(tmp_path / "imgs", {"train": 2})
    (root / "train" / "cat" / name).write_bytes(blob)
    return root


def _loaded(root: Path, name: str) -> np.ndarray:
    split = load_split(root, "train")
    # the folder order puts the odd file last in its class (after 0.png and 1.png)
    cat = split.classes.index("cat")
    return split.images[(split.labels == cat).nonzero()[-1].item()].permute(1, 2, 0).numpy()


def test_rgba_drops_its_alpha_as_torchvision_does(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (32, 32, 4), dtype=np.uint8)
    got = _loaded(_folder_with(tmp_path, "9.png", _png(rgba, "RGBA")), "9.png")
    assert np.array_equal(got, rgba[..., :3])


def test_grey_becomes_three_equal_channels(tmp_path):
    grey = np.random.default_rng(1).integers(0, 256, (32, 32), dtype=np.uint8)
    got = _loaded(_folder_with(tmp_path, "9.png", _png(grey, "L")), "9.png")
    assert np.array_equal(got, np.repeat(grey[..., None], 3, axis=2))


def test_16_bit_grey_keeps_its_top_8_bits_instead_of_clipping_to_white(tmp_path):
    deep = np.random.default_rng(2).integers(0, 65536, (32, 32), dtype=np.uint16)
    got = _loaded(_folder_with(tmp_path, "9.png", _png(deep)), "9.png")
    assert Image.open(io.BytesIO(_png(deep))).mode.startswith("I")
    assert np.array_equal(got[..., 0], (deep >> 8).astype(np.uint8)) and (got[..., 0] < 255).mean() > 0.9


def test_a_jpeg_named_png_decodes_by_its_content(tmp_path):
    rgb = np.full((32, 32, 3), 120, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
    got = _loaded(_folder_with(tmp_path, "9.png", buf.getvalue()), "9.png")
    assert np.abs(got.astype(int) - 120).max() <= 2


@pytest.mark.parametrize("blob, message", [(b"", "an empty file (0 bytes)"),
                                           (b"\x89PNG\r\n\x1a\n truncated", "not a readable image")])
def test_an_empty_or_broken_image_is_named(tmp_path, blob, message):
    root = _folder_with(tmp_path, "9.png", blob)
    with pytest.raises(DataError, match=re.escape(message)) as e:
        load_split(root, "train")
    assert str(root / "train" / "cat" / "9.png") in str(e.value)


def test_a_float_image_is_refused(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((32, 32), dtype=np.float32), mode="F").save(buf, format="TIFF")
    with pytest.raises(DataError, match="floating-point image"):
        load_split(_folder_with(tmp_path, "9.png", buf.getvalue()), "train")  # content decides


# ----------------------------------------------------------------------------- archives
def _tar_with(tmp_path: Path, extra: tarfile.TarInfo, data: bytes = b"") -> Path:
    root = write_image_folder(tmp_path / "src" / "set", {"train": 2})
    path = tmp_path / "set.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(root, arcname="set")
        tar.addfile(extra, io.BytesIO(data) if data else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data)
    return info


@pytest.mark.parametrize("member, data, message", [
    (_member("set/train/cat/link.png", tarfile.SYMTYPE, "/etc/passwd"), b"", "is a link (to '/etc/passwd')"),
    (_member("set/train/cat/hard.png", tarfile.LNKTYPE, "set/train/cat/0.png"), b"", "is a link"),
    (_member("/tmp/evil.png", data=b"x"), b"x", "points outside the archive"),
    (_member("set/../../evil.png", data=b"x"), b"x", "points outside the archive"),
], ids=["symlink", "hardlink", "absolute", "dotdot"])
def test_unsafe_tar_members_are_refused_and_nothing_is_written(tmp_path, member, data, message):
    archive = _tar_with(tmp_path, member, data)
    before = {p for p in tmp_path.rglob("*")}
    with pytest.raises(DataError, match=re.escape(message)):
        load_split(archive, "train")
    assert {p for p in tmp_path.rglob("*")} == before and not Path("/tmp/evil.png").exists()


def test_a_zip_symlink_member_is_refused(tmp_path):
    path = tmp_path / "set.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("set/train/cat/0.png", _png(np.zeros((32, 32, 3), np.uint8)))
        link = zipfile.ZipInfo("set/train/cat/1.png")
        link.external_attr = (0o120777 << 16)  # S_IFLNK
        z.writestr(link, "/etc/passwd")
    with pytest.raises(DataError, match="is a symbolic link"):
        load_split(path, "train")


# ----------------------------------------------------------------------------- checkpoints
class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch ran-code",))


def _images() -> torch.Tensor:
    return torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _bad_checkpoints(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    images = _images()
    good = tmp_path / "good"
    train(TrainConfig(arch="svhn32", steps=1, batch_size=16), images, good, device=torch.device("cpu"),
          log=lambda s: None)
    state = checkpoint.load(good / "last.pt")
    (tmp_path / "truncated.pt").write_bytes((good / "last.pt").read_bytes()[:700])
    foreign = dict(state)
    foreign["config"] = dict(state["config"], arch="imagenet32")  # weights of one D, the config of another
    torch.save(foreign, tmp_path / "foreign.pt")
    code = dict(state, payload=_RunsCode())
    torch.save(code, tmp_path / "code.pt")  # its pickle calls os.system on load, unless refused
    wrong = dict(state, d=dict(state["d"]))
    wrong["d"]["convs.0.0.weight"] = torch.zeros(5, 3, 5, 5)
    torch.save(wrong, tmp_path / "wrong-shape.pt")
    torch.save({"config": state["config"], "step": 1, "d": state["d"]}, tmp_path / "d-only.pt")  # a gan_run snapshot
    return {"truncated": (tmp_path / "truncated.pt", "is unreadable"),
            "foreign": (tmp_path / "foreign.pt", "imagenet32"),
            "wrong-shape": (tmp_path / "wrong-shape.pt", "fit"),
            "d-only": (tmp_path / "d-only.pt", ""),
            "code": (tmp_path / "code.pt", "")}


def test_bad_checkpoints_through_discriminator_are_one_line_and_run_nothing(tiny_folder, tmp_path, capsys,
                                                                            no_data_reads, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for case, (path, message) in _bad_checkpoints(tmp_path).items():
        if case == "d-only":  # a D alone is what --discriminator takes (gan_run's snapshots)
            continue
        code, err = _exit(cifar10_probe.main, ["--preset", "smoke", "--data", str(tiny_folder), "--out",
                                               str(tmp_path / "runs"), "--discriminator", str(path)], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (case, err)
    assert not (tmp_path / "ran-code").exists()


def test_bad_checkpoints_through_resume_are_one_line_and_run_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images = _images()
    for case, (path, message) in _bad_checkpoints(tmp_path).items():
        run = tmp_path / f"resume-{case}"
        run.mkdir()
        (run / "last.pt").write_bytes(path.read_bytes())
        with pytest.raises(UserError, match="--resume") as e:
            train(TrainConfig(arch="svhn32", steps=2, batch_size=16), images, run, device=torch.device("cpu"),
                  resume=True, log=lambda s: None)
        assert message in str(e.value) and "\n" not in str(e.value), case
    assert not (tmp_path / "ran-code").exists()


# ----------------------------------------------------------------------------- signals
@pytest.mark.slow
def test_sigint_ends_training_failed_and_the_checkpoint_resumes(tiny_folder, tmp_path):
    db = tmp_path / "int.db"
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{db}", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dcgan_ref.train", "--data", str(tiny_folder), "--arch", "svhn32", "--batch-size",
           "16", "--log-every", "1", "--ckpt-every", "2", "--sample-every", "100000", "--out", str(out)]
    proc = subprocess.Popen([*cmd, "--steps", "100000"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("step 3/"):
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGINT and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == \
        "error: interrupted; the MLflow run is marked FAILED, the last checkpoint kept"
    step = checkpoint.load(out / "last.pt")["step"]
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("dcgan_train").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    resumed = subprocess.run([*cmd, "--steps", str(step + 1), "--resume"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint.load(out / "last.pt")["step"] == step + 1


# ----------------------------------------------------------------------------- nonsense arguments
PROBE_NONSENSE = [
    ["--preset", "fastest"], ["--seed", "-3"], ["--seed", "one"], ["--draws", "0"], ["--per-class", "-1"],
    ["--extractor", "bogus"], ["--classifier", "forest"], ["--arch", "resnet"], ["--device", "tpu"],
    ["--device", "cuda:7"], ["--eval-epochs", "x"], ["--gan-epochs", "-1"], ["--bn-mode", "sometimes"],
    ["--exclude-near-duplicates", "/none.json"],
    ["--dataset", "mnist"], ["--unknown-flag"],
]


@pytest.mark.parametrize("argv", [["--data", "/nonexistent/cifar"], ["--gan-data", "/nonexistent/gan"]],
                         ids=lambda a: " ".join(a))
def test_missing_data_paths_fail_cleanly(argv, tiny_folder, tmp_path, capsys):
    base = ["--preset", "smoke", "--data", str(tiny_folder), "--out", str(tmp_path / "runs"), "--no-download"]
    for main in (cifar10_probe.main, svhn_1000.main):
        code, err = _exit(main, [*base, *argv], capsys)
        assert _clean_failure(code, err) and "/nonexistent/" in err, (main.__module__, argv, err)


def _clean_failure(code: int, err: str) -> bool:
    return code == 2 and "Traceback" not in err and err.strip() != ""


@pytest.mark.parametrize("argv", PROBE_NONSENSE, ids=lambda a: " ".join(a))
def test_nonsense_probe_arguments_fail_cleanly(argv, tiny_folder, tmp_path, capsys, no_data_reads):
    base = ["--preset", "smoke", "--data", str(tiny_folder), "--out", str(tmp_path / "runs"), "--no-download"]
    for main in (cifar10_probe.main, svhn_1000.main):
        code, err = _exit(main, [*base, *argv], capsys)
        assert _clean_failure(code, err), (main.__module__, argv, err)


@pytest.mark.parametrize("main, argv", [
    (train_mod.main, ["--steps", "0"]), (train_mod.main, ["--arch", "bogus"]),
    (train_mod.main, ["--data", "/nonexistent"]), (train_mod.main, ["--batch-size", "-4"]),
    (gan_run.main, ["start", "--gan-data", "/nonexistent", "--data", "/nonexistent"]),
    (gan_run.main, ["start", "--gan-data", "train", "--data", "x", "--budget-images", "0"]),
    (gan_run.main, ["status", "--run-dir", "/nonexistent/run"]), (gan_run.main, ["restart"]),
    (report.main, ["--results-dir"]), (reproduce.main, ["--budget-min", "-5"]),
    (reproduce.main, ["--data", "/nonexistent", "--budget-min", "1"]),
    (sensitivity.main, ["--knobs", "colour"]), (sensitivity.main, ["--encoding-pair", "onlyone"]),
], ids=lambda x: " ".join(x) if isinstance(x, list) else x.__module__.split(".")[-1])
def test_nonsense_arguments_of_the_other_commands_fail_cleanly(main, argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = _exit(main, argv, capsys)
    assert _clean_failure(code, err), (argv, err)


def test_a_corrupt_tracking_store_is_one_line_before_any_data(tiny_folder, tmp_path, capsys, monkeypatch,
                                                              no_data_reads):
    (tmp_path / "bad.db").write_bytes(b"this is not an sqlite database" * 100)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'bad.db'}")
    code, err = _exit(cifar10_probe.main, ["--preset", "smoke", "--data", str(tiny_folder)], capsys)
    assert code == 2 and "cannot be opened" in err and len(err.strip().splitlines()) == 1, err


def test_dcgan64_on_32x32_data_says_what_size_it_needs(tiny_folder, tmp_path, capsys):
    code, err = _exit(cifar10_probe.main, ["--preset", "smoke", "--data", str(tiny_folder), "--out",
                                           str(tmp_path / "runs"), "--arch", "dcgan64"], capsys)
    assert _clean_failure(code, err) and "64" in err and "32" in err and len(err.strip().splitlines()) == 1, err


# ----------------------------------------------------------------------------- two runs, one results folder
@pytest.mark.slow
def test_two_reproduce_runs_on_one_results_folder_both_land(tiny_folder, tmp_path):
    results = tmp_path / "results"
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'shared.db'}", "PYTHONPATH": str(REPO),
                        "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.reproduce", "--preset", "smoke", "--data",
                               str(tiny_folder), "--results-dir", str(results), "--out", str(tmp_path / f"runs-{ex}"),
                               "--budget-min", "30", "--no-download", "--extractor", ex],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for ex in ("pixels", "random-d")]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and "Traceback" not in err and "FAILED" not in out, out[-3000:] + err[-3000:]
    for table in ("cifar10_probe", "svhn_1000"):
        ours = pd.read_csv(results / f"{table}.csv").query("source == 'ours'")["extractor"]
        assert {"pixels", "random-init D (svhn32)"} <= set(ours), (table, set(ours))
    assert (results / "REPORT.md").read_text().startswith("# dcgan-repro")
    assert not list(results.glob(".*.tmp*")) and not list(results.glob(".REPORT*"))
