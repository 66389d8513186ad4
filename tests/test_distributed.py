"""torchrun + DDP on CPU (gloo).

One step's gradients on 2 ranks x batch 16 equal 1 process x batch 32 (float tolerance):
that is the equivalence, free of Adam's first steps, which move every weight by about +-lr
whatever the size of its gradient (so gradients that agree to 1e-7 but straddle zero give
weights 2 lr apart).  Whole runs through torchrun (2 ranks, and 2 ranks resumed on 1) are
then held to that bound."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dcgan_ref.runtime import checkpoint

REPO = Path(__file__).resolve().parents[1]


def _train(tmp_path: Path, data: Path, out: str, ranks: int, *extra: str) -> dict:
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
    cmd = [*launcher, "-m", "dcgan_ref.train", "--data", str(data), "--arch", "svhn32", "--batch-size", "32",
           "--log-every", "1", "--ckpt-every", "1", "--sample-every", "1000", "--deterministic",
           "--out", str(tmp_path / out), *extra]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return checkpoint.load(tmp_path / out / "last.pt")


LR = 2e-4


def _assert_same_training_state(a: dict, b: dict) -> None:
    """Same step, data order and RNG streams; weights within Adam's sign-flip bound (2 lr per
    step); batchnorm statistics those of the global batch (a rank normalising with its own
    16 images lands about 0.1 away)."""
    assert a["step"] == b["step"] and a["pos"] == b["pos"] and torch.equal(a["perm"], b["perm"])
    assert torch.equal(a["data_gen"], b["data_gen"]) and torch.equal(a["z_gen"], b["z_gen"])
    for net in ("g", "d"):
        assert a[net].keys() == b[net].keys()
        for k in a[net]:
            x, y = a[net][k].float(), b[net][k].float()
            if k.endswith(("weight", "bias")):
                assert (x - y).abs().max() <= 2 * LR * a["step"] + 1e-6, f"{net}.{k}"
            elif k.endswith(("running_mean", "running_var")):
                torch.testing.assert_close(x, y, rtol=1e-2, atol=2e-3, msg=f"{net}.{k}")


def _one_step_gradients(rank: int, world_size: int, init_file: str, out: str) -> None:
    """One D+G step with lr 0 on this rank's shard; saves the (DDP-averaged) gradients."""
    import torch.distributed as dist

    from dcgan_ref.runtime.distributed import World
    from dcgan_ref.step import GanSetup, StepSettings

    torch.set_num_threads(1)
    world = World(rank, world_size)
    if world_size > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    gen = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=gen)
    z = torch.randn(32, 100, generator=gen)
    setup = GanSetup.create("svhn32", StepSettings(), torch.device("cpu"), seed=0, lr=0.0, world=world)
    setup.make_step()(world.shard(real), world.shard(z))
    grads = {f"{n}.{k}": p.grad.clone() for n, m in (("g", setup.g), ("d", setup.d)) for k, p in m.named_parameters()}
    torch.save(grads, f"{out}.{rank}")
    if world_size > 1:
        dist.destroy_process_group()


@pytest.mark.slow
def test_one_step_gradients_on_two_ranks_equal_one_process(tmp_path):
    import torch.multiprocessing as mp

    _one_step_gradients(0, 1, "", str(tmp_path / "single"))
    mp.spawn(_one_step_gradients, args=(2, str(tmp_path / "init"), str(tmp_path / "ddp")), nprocs=2)
    single = torch.load(tmp_path / "single.0")
    for rank in (0, 1):
        ddp = torch.load(tmp_path / f"ddp.{rank}")
        assert ddp.keys() == single.keys()
        for k in single:  # float rounding only: ~1e-6 of the gradient's norm
            assert float((ddp[k] - single[k]).norm() / single[k].norm()) < 1e-5, k


@pytest.mark.slow
def test_torchrun_two_ranks_train_the_same_gan_and_resume_on_one(tiny_folder, tmp_path):
    whole = _train(tmp_path, tiny_folder, "whole", 1, "--steps", "4")
    two = _train(tmp_path, tiny_folder, "two", 2, "--steps", "4")
    _assert_same_training_state(whole, two)
    assert not torch.equal(two["d"]["convs.1.1.running_var"], torch.ones(128))  # batchnorm statistics were set
    _train(tmp_path, tiny_folder, "cut", 2, "--steps", "2")  # a 2-rank run stopped at step 2...
    resumed = _train(tmp_path, tiny_folder, "cut", 1, "--steps", "4", "--resume")  # ...finished on 1 rank
    _assert_same_training_state(whole, resumed)


def test_the_global_batch_must_divide_over_the_ranks():
    from dcgan_ref.runtime.distributed import World, check_batch
    from dcgan_ref.runtime.errors import UserError

    check_batch(128, World(0, 2))
    with pytest.raises(UserError, match="must divide evenly over 3 ranks"):
        check_batch(128, World(0, 3))
    assert torch.equal(World(1, 2).shard(torch.arange(8)), torch.arange(4, 8))


def _gather_on_ranks(rank: int, world_size: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    from dcgan_ref.runtime.distributed import World, gather_rows, share_object

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    world = World(rank, world_size)
    x = torch.arange(7 * 3, dtype=torch.float32).view(7, 3)  # 7 rows: shares of 4 and 3
    seen = []
    scale = share_object({"factor": torch.tensor(2.0 if rank == 0 else -1.0)}, world, torch.device("cpu"))
    result = gather_rows(lambda t: seen.append(len(t)) or t * scale["factor"], x, world)
    torch.save({"result": result, "seen": seen}, f"{out}.{rank}")
    dist.destroy_process_group()


def test_sharded_extraction_gives_rank_0_every_row_in_order(tmp_path):
    """Each rank maps its share with rank 0's object; rank 0 gets the rows in order, the others nothing."""
    import torch.multiprocessing as mp

    mp.spawn(_gather_on_ranks, args=(2, str(tmp_path / "init"), str(tmp_path / "out")), nprocs=2)
    r0, r1 = torch.load(tmp_path / "out.0"), torch.load(tmp_path / "out.1")
    assert torch.equal(r0["result"], torch.arange(21, dtype=torch.float32).view(7, 3) * 2)  # rank 0's factor
    assert r1["result"] is None and (r0["seen"], r1["seen"]) == ([4], [3])


@pytest.mark.slow
def test_a_protocol_under_torchrun_gives_the_rows_of_one_process(tiny_folder, tmp_path):
    """``torchrun -m benchmarks.cifar10_probe``: rank 0 fits, both ranks extract, rank 0 alone
    evaluates and writes; the rows equal those of one process."""
    import pandas as pd

    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = ["-m", "benchmarks.cifar10_probe", "--preset", "smoke", "--data", str(tiny_folder), "--device", "cpu",
            "--extractor", "random-d,kmeans-16,pixels", "--out", str(tmp_path / "runs")]
    tables = {}
    for name, launcher in (("one", []), ("two", ["-m", "torch.distributed.run", "--standalone",
                                                 "--nproc_per_node", "2"])):
        cmd = [sys.executable, *launcher, *args, "--results-dir", str(tmp_path / name)]
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        table = pd.read_csv(tmp_path / name / "cifar10_probe.csv")
        tables[name] = table[table.source == "ours"].reset_index(drop=True)
    key = ["extractor", "metric", "value", "std", "C", "feature_dim"]
    assert len(tables["one"]) == 6
    pd.testing.assert_frame_equal(tables["one"][key], tables["two"][key])


def test_batch_statistics_at_extraction_cannot_shard(tiny_folder, tmp_path, monkeypatch, capsys):
    from benchmarks import cifar10_probe
    from benchmarks.protocol import runner as protocol
    from dcgan_ref.runtime.distributed import World
    from dcgan_ref.runtime.errors import run_cli

    monkeypatch.setattr(protocol, "init_from_env", lambda device, timeout=None: (World(0, 2), device))
    monkeypatch.setattr(protocol, "load_data", lambda *a, **k: pytest.fail("data was read"))
    with pytest.raises(SystemExit) as exit_info:
        run_cli(cifar10_probe.main, ["--preset", "smoke", "--data", str(tiny_folder), "--bn-mode", "batch",
                                     "--extractor", "random-d"])
    assert exit_info.value.code == 2 and "run it in one process" in capsys.readouterr().err
