"""The supervised-CNN control (baselines/supervised.py): learns, searches honestly, is D-shaped."""
from __future__ import annotations

import random

import pytest
import torch
from torch.nn import functional as F

from baselines.supervised import (
    SupervisedCNN,
    SupervisedConfig,
    _translate,
    evaluate_error,
    random_search,
    sample_config,
    train_classifier,
)
from dcgan_ref.models import Discriminator, get_architecture

# 10 distinct colours (corners of the RGB cube + two extras), one per class.
COLOURS = torch.tensor([[r, g, b] for r in (40, 215) for g in (40, 215) for b in (40, 215)]
                       + [[128, 128, 128], [128, 40, 215]], dtype=torch.float)


def coloured(per_class: int, seed: int, n_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic 32x32 images: class = flat colour, plus heavy per-pixel noise."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    x = COLOURS[y][:, :, None, None] + 25 * torch.randn(len(y), 3, 32, 32, generator=gen)
    return x.clamp(0, 255).round().to(torch.uint8), y


def quiet(_: str) -> None:
    pass


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: one intra-op thread is as fast and immune to OpenMP spin-waits
    when other processes share the (2) cores, which otherwise slows training 10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_learns_a_separable_problem():
    x_train, y_train = coloured(5, seed=0)
    x_val, y_val = coloured(10, seed=1)
    cfg = SupervisedConfig(lr=1e-3, weight_decay=1e-5, dropout=0.1, epochs=4, batch_size=10, augment=True)
    model = train_classifier(cfg, "svhn32", x_train, y_train, n_classes=10, seed=0, device="cpu")
    assert not model.training
    err = evaluate_error(model, x_val, y_val)
    assert err < 30.0, f"validation error {err}% on a separable problem (chance is 90%)"


def test_same_architecture_as_d():
    for name in ("svhn32", "imagenet32"):
        arch = get_architecture(name)
        model, d = SupervisedCNN(name, n_classes=7), Discriminator(arch)
        ours = [tuple(p.shape) for p in model.convs.parameters()]
        assert ours == [tuple(p.shape) for p in d.convs.parameters()]
        assert [type(m) for m in model.convs.modules()] == [type(m) for m in d.convs.modules()]
        assert model.head.in_features == arch.widths[-1] * arch.final_size**2 == d.head.in_features
        assert model.head.out_features == 7
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
        w = model.convs[0][0].weight  # paper init N(0, 0.02)
        assert abs(w.std().item() - 0.02) < 0.005


def test_random_search_picks_lowest_val_error_and_is_deterministic():
    x_train, y_train = coloured(2, seed=0)
    x_val, y_val = coloured(2, seed=1)
    lines: list[str] = []

    def run(seed: int):
        return random_search("svhn32", x_train, y_train, x_val, y_val, trials=3, seed=seed, device="cpu",
                             max_epochs=1, log=lines.append)

    a = run(seed=5)
    errors = [t["val_error"] for t in a.trials]
    winner = errors.index(min(errors))  # ties go to the earlier trial
    assert a.val_error == min(errors)
    assert SupervisedConfig(**a.trials[winner]["config"]) == a.best
    assert evaluate_error(a.model, x_val, y_val) == a.val_error  # the returned model is the winner
    assert all(t["config"]["epochs"] == 1 for t in a.trials)  # max_epochs cap applied
    assert len(lines) == 3 and lines[0].startswith("trial 1/3:") and "val error" in lines[0]
    assert len({t["seed"] for t in a.trials}) == 3

    b = run(seed=5)
    assert [t["val_error"] for t in b.trials] == errors
    assert [t["config"] for t in b.trials] == [t["config"] for t in a.trials]


def test_sampled_configs_depend_on_seed_and_stay_in_range():
    def draw(seed: int) -> list[SupervisedConfig]:
        rng = random.Random(seed)
        return [sample_config(rng) for _ in range(64)]

    a = draw(0)
    assert a == draw(0)
    assert a != draw(1)
    for c in a:
        assert 1e-4 <= c.lr <= 3e-3 and 1e-6 <= c.weight_decay <= 1e-2 and 0 <= c.dropout <= 0.5
        assert c.batch_size in (32, 64, 128) and 50 <= c.epochs <= 200
    assert {c.augment for c in a} == {True, False}
    assert len({c.batch_size for c in a}) == 3


def test_training_is_seeded_and_leaves_global_rng_alone():
    x, y = coloured(2, seed=0)
    cfg = SupervisedConfig(lr=1e-3, weight_decay=0.0, dropout=0.5, epochs=1, batch_size=8, augment=True)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    m1 = train_classifier(cfg, "svhn32", x, y, n_classes=10, seed=3, device="cpu")
    assert torch.equal(torch.get_rng_state(), before)
    m2 = train_classifier(cfg, "svhn32", x, y, n_classes=10, seed=3, device="cpu")
    m3 = train_classifier(cfg, "svhn32", x, y, n_classes=10, seed=4, device="cpu")
    assert torch.equal(m1.head.weight, m2.head.weight)
    assert not torch.equal(m1.head.weight, m3.head.weight)


def test_translation_is_a_shift_of_at_most_two_pixels():
    torch.manual_seed(0)
    x = torch.randn(16, 3, 8, 8)
    out = _translate(x, 2)
    padded = F.pad(x, (2,) * 4)
    crops = {(dy, dx): padded[:, :, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)}
    found = [next(k for k, c in crops.items() if torch.equal(c[i], out[i])) for i in range(16)]
    assert len(set(found)) > 1  # offsets vary per image


@pytest.mark.parametrize("mutate, match", [
    (lambda x, y: (x, y + 1), r"labels must lie in \[0, 9\]"),
    (lambda x, y: (x, y - 1), r"labels must lie in \[0, 9\]"),
    (lambda x, y: (x, y[:-1]), "to match the images"),
    (lambda x, y: (x.float(), y), "uint8"),
    (lambda x, y: (x, y.float()), "integer"),
    (lambda x, y: (x[:, :, :16, :16], y), r"shape \(N, 3, 32, 32\)"),
])
def test_bad_input_raises_clear_value_error(mutate, match):
    x, y = coloured(1, seed=0)
    xb, yb = mutate(x, y)
    cfg = SupervisedConfig(lr=1e-3, weight_decay=0.0, dropout=0.0, epochs=1, batch_size=8, augment=False)
    with pytest.raises(ValueError, match=match):
        train_classifier(cfg, "svhn32", xb, yb, n_classes=10, seed=0, device="cpu")
    with pytest.raises(ValueError, match=match):
        random_search("svhn32", xb, yb, x, y, trials=1, seed=0, device="cpu", max_epochs=1, log=quiet)


def test_invalid_config_raises():
    with pytest.raises(ValueError, match="invalid config"):
        SupervisedConfig(lr=1e-3, weight_decay=0.0, dropout=0.0, epochs=0, batch_size=8, augment=False)
    with pytest.raises(ValueError, match="invalid config"):
        SupervisedConfig(lr=1e-3, weight_decay=0.0, dropout=1.0, epochs=1, batch_size=8, augment=False)
