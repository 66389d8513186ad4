"""The paper's figures (dcgan_ref/figures): each experiment's numbers on tiny models, with
known answers, and the command that makes them all."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from dcgan_ref.figures import arithmetic, guided_backprop, latent_walk, memorisation
from dcgan_ref.figures.inputs import FigureInputs, decode, prepare_generator
from dcgan_ref.models import build_gan
from dcgan_ref.neighbours import nearest_images
from dcgan_ref.runtime import checkpoint


@pytest.fixture(scope="module")
def tiny_inputs() -> FigureInputs:
    g, d = build_gan("svhn32", seed=0)
    gen = torch.Generator().manual_seed(1)
    train = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8, generator=gen)
    held = torch.randint(0, 256, (100, 3, 32, 32), dtype=torch.uint8, generator=gen)
    return FigureInputs(g=prepare_generator(g, n=512, batch=256), d=d.eval(), random_d=build_gan("svhn32", 1)[1].eval(),
                        label="tiny", train=train, held_out=held, data_label="noise")


def test_a_prepared_generator_decodes_each_z_whatever_its_batch(tiny_inputs):
    z = tiny_inputs.arch.sample_z(70, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(decode(tiny_inputs.g, z[:3]), decode(tiny_inputs.g, z)[:3])


@pytest.mark.parametrize("spherical", [False, True])
def test_walk_endpoints_are_the_decoded_endpoints(tiny_inputs, spherical):
    frames, z = latent_walk.walks(tiny_inputs, rows=3, steps=9, spherical=spherical)
    assert frames.shape == (3, 9, 3, 32, 32)
    ends = tiny_inputs.arch.sample_z(6, generator=torch.Generator().manual_seed(tiny_inputs.seed))
    torch.testing.assert_close(z[:, 0], ends[0::2])
    torch.testing.assert_close(z[:, -1], ends[1::2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(frames[:, 0], decode(tiny_inputs.g, ends[0::2]))
    torch.testing.assert_close(frames[:, -1], decode(tiny_inputs.g, ends[1::2]), atol=1e-4, rtol=1e-4)


def test_slerp_keeps_the_norm_between_equal_norm_ends():
    z0, z1 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    path = latent_walk.interpolate(z0, z1, 5, spherical=True)
    torch.testing.assert_close(path.norm(dim=1), torch.full((5,), 3.0))
    assert float(latent_walk.interpolate(z0, z1, 5)[2].norm()) < 2.2  # the straight line dips inside


def test_smoothness_tells_an_even_walk_from_a_jump():
    ramp = torch.linspace(0, 1, 10)[None, :, None, None, None].expand(1, 10, 3, 4, 4)
    jump = (torch.arange(10) >= 5).float()[None, :, None, None, None].expand(1, 10, 3, 4, 4)
    independent = torch.rand(64, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    assert latent_walk.smoothness(ramp, independent)["max_jump_ratio"] == pytest.approx(1.0)
    assert latent_walk.smoothness(jump, independent)["max_jump_ratio"] == pytest.approx(9.0)  # all in one step


def test_vector_arithmetic_is_mean_a_minus_mean_b_plus_mean_c():
    z = torch.arange(20.0).view(10, 2)
    recipe = arithmetic.Recipe.parse("0,1,2:3:4,5")
    torch.testing.assert_close(arithmetic.combine(z, recipe), z[:3].mean(0) - z[3] + z[4:6].mean(0))
    near = arithmetic.neighbours(torch.zeros(100), n=8, noise=0.25)
    assert near.shape == (9, 100) and torch.equal(near[0], torch.zeros(100)) and near.abs().max() <= 0.25
    assert near[1:].abs().max() > 0.2  # uniform over the whole +-0.25
    with pytest.raises(ValueError, match="sheet index 12 out of range"):
        arithmetic.combine(z, arithmetic.Recipe.parse("0:12:1"))
    with pytest.raises(ValueError, match="three comma lists"):
        arithmetic.Recipe.parse("1,2:3")


def test_guided_backprop_equals_the_plain_gradient_where_nothing_is_negative():
    """All weights positive, batchnorm the identity, positive input: no gradient is
    negative, so guiding changes nothing; on a real D it does."""
    _, d = build_gan("svhn32", seed=0)
    with torch.no_grad():
        for m in d.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.abs_()
            if isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1), m.bias.zero_(), m.running_mean.zero_(), m.running_var.fill_(1 - m.eps)
    images = torch.full((2, 3, 32, 32), 200, dtype=torch.uint8)  # > 127.5: positive after to_unit_range
    plain = guided_backprop.guided_gradients(d, images, [3, 7], guided=False)
    torch.testing.assert_close(guided_backprop.guided_gradients(d, images, [3, 7]), plain)
    _, real_d = build_gan("svhn32", seed=0)
    noise = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    guided = guided_backprop.guided_gradients(real_d.eval(), noise, [3, 7])
    assert not torch.allclose(guided, guided_backprop.guided_gradients(real_d, noise, [3, 7], guided=False))
    assert not any(m._backward_hooks for m in real_d.modules())  # the caller's D is untouched


def test_strongest_channels_pick_distinct_images_and_concentration_has_known_answers(tiny_inputs):
    picks = guided_backprop.strongest_channels(tiny_inputs.d, tiny_inputs.held_out, k=5)
    assert len({p["image"] for p in picks}) == 5
    assert len({p["channel"] for p in picks}) == 5
    one_pixel = torch.zeros(1, 3, 10, 10)
    one_pixel[0, :, 4, 4] = 1.0
    assert float(guided_backprop.concentration(one_pixel)[0]) == pytest.approx(1.0)
    assert float(guided_backprop.concentration(torch.ones(1, 3, 10, 10))[0]) == pytest.approx(0.05)


def test_nearest_matches_brute_force_and_a_copying_generator_is_caught():
    gen = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(500, 48, generator=gen), torch.randn(30, 48, generator=gen)
    dist, idx = nearest_images(queries, bank, k=3, chunk=7)
    brute = torch.cdist(queries, bank).sort(dim=1)
    assert torch.equal(idx, brute.indices[:, :3])
    torch.testing.assert_close(dist, brute.values[:, :3], atol=1e-5, rtol=1e-5)
    copies = nearest_images(bank[:50] + 1e-3, bank)[0][:, 0]  # a G that returns training images
    held = nearest_images(queries, bank)[0][:, 0]
    verdict = memorisation.compare(copies, held)
    assert verdict["share_generated_below_held_out_p1"] == 1.0 and verdict["median_ratio_generated_to_held_out"] < 0.01
    assert memorisation.compare(held, held)["median_ratio_generated_to_held_out"] == pytest.approx(1.0)


def test_the_figures_command_writes_every_figure_and_logs_it(tiny_folder, tmp_path, capsys):
    import mlflow

    from dcgan_ref.figures.__main__ import main
    from dcgan_ref.runtime.errors import run_cli

    g, d = build_gan("svhn32", seed=0)
    ckpt = tmp_path / "run" / "gan" / "last.pt"
    checkpoint.save_atomic({"config": {"arch": "svhn32"}, "step": 7, "g": g.state_dict(), "d": d.state_dict()}, ckpt)
    out = tmp_path / "figs"
    with pytest.raises(SystemExit) as done:
        run_cli(main, ["--generator", str(ckpt), "--data", str(tiny_folder), "--train-data", "data",
                       "--out", str(out), "--arithmetic", "0,1:2:3,4", "--arithmetic-caption", "test recipe"])
    assert done.value.code == 0, capsys.readouterr().err
    model = out / "run"  # a model's figures go in its own folder (the run's, by default)
    for name in ("latent_walk", "arithmetic", "guided_backprop", "memorisation"):
        assert (model / f"{name}.png").stat().st_size > 1000
        assert json.loads((model / f"{name}.json").read_text())["model"].startswith("dcgan svhn32")
    assert (model / "arithmetic_sheet.png").exists()
    assert json.loads((model / "arithmetic.json").read_text())["recipe"] == {"A": [0, 1], "B": [2], "C": [3, 4]}
    assert json.loads((out / "dedup.json").read_text())["n_test"] == 200  # the data's figure, beside the models'
    run = mlflow.search_runs(experiment_names=["figures"]).iloc[0]
    assert run["status"] == "FINISHED" and run["metrics.latent_walk.mean_step"] > 0


def test_the_figures_command_refuses_bad_input_in_one_line(tmp_path, capsys):
    from dcgan_ref.figures.__main__ import main
    from dcgan_ref.runtime.errors import run_cli

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for argv, message in ((["--generator", str(tmp_path / "junk.pt"), "--data", "x"], "--generator"),
                          (["--generator", "newmu-svhn:" + str(tmp_path), "--data", "x"], "--generator newmu-svhn"),
                          (["--generator", "g.pt", "--data", "x", "--only", "nope"], "--only nope: unknown figure"),
                          (["--generator", "g.pt", "--data", "x", "--arithmetic", "1:2"], "three comma lists"),
                          (["--only", "latent_walk", "--data", "x"], "latent_walk: needs --generator"),
                          (["--only", "collapse"], "collapse: needs --collapse-run"),
                          (["--collapse-run", "no-equals-sign"], "expected LABEL=RUN_ID"),
                          ([], "nothing to draw")):
        with pytest.raises(SystemExit) as done:
            run_cli(main, argv)
        err = capsys.readouterr().err
        assert done.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_a_figure_label_mlflow_refuses_in_a_metric_name_is_logged_under_a_safe_one():
    import mlflow

    from dcgan_ref.figures.__main__ import _flat_numbers

    numbers = _flat_numbers("collapse", {"runs": {"forced collapse, lr 0.1": {"checks": 5, "flagged": True}}}, {})
    assert numbers == {"collapse.runs.forced collapse_ lr 0.1.checks": 5.0}
    mlflow.set_experiment("figures")
    with mlflow.start_run():
        mlflow.log_metrics(numbers)  # the comma as it was: MlflowException, the figures run ended FAILED
