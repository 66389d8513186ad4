"""The sensitivity table: one knob at a time, each row's difference against the default
and the default's own noise band (smoke preset, synthetic data)."""
import math

import mlflow
import pandas as pd
import pytest
import torch

from benchmarks.classifiers.registry import CLASSIFIERS
from benchmarks.protocol import evaluation
from benchmarks.studies import sensitivity
from dcgan_ref.features import layer_columns, pooled_features
from dcgan_ref.models import build_gan
from dcgan_ref.runtime.errors import UserError


def _argv(data, tmp_path, *extra):
    return ["--preset", "smoke", "--data", str(data), "--out", str(tmp_path / "runs"),
            "--results-dir", str(tmp_path / "results"), *extra]


def test_every_knob_gets_a_row_with_its_difference_and_the_default_band(tiny_folder, tmp_path):
    rows = sensitivity.main(_argv(tiny_folder, tmp_path, "--extractor", "random-d", "--split-seeds", "2",
                                  "--cv-folds", "2", "--encoding-pair", f"{tiny_folder},{tiny_folder}"))
    df = pd.DataFrame([r.as_dict() for r in rows])
    assert set(df["knob"]) == {"default", *sensitivity.KNOBS}
    default = df[df["default"] == True]  # noqa: E712
    assert len(default) == 2 and default["diff"].isna().all() and default["band"].notna().all()
    measured = df[(df["metric"] != "") & ~df["default"].astype(bool) & (df["knob"] != "encoding")]
    for _, r in measured.iterrows():  # diff is the setting's value minus the default's, same metric
        base = float(default[default["metric"] == r["metric"]]["value"].iloc[0])
        assert math.isclose(r["diff"], r["value"] - base, abs_tol=2e-3)
    layers = df[(df["knob"] == "layers") & (df["metric"] == "test_accuracy")]
    assert set(layers["feature_dim"]) == {16 * 256, 16 * (128 + 256), 16 * 64, 16 * 128}  # svhn32: 64, 128, 256
    pooling = df[(df["knob"] == "pooling") & (df["metric"] == "test_accuracy")].set_index("setting")["feature_dim"]
    assert pooling["global max"] == 448 and pooling["2x2 max"] == 4 * 448
    test_choice = df[df["setting"].str.contains("NOT a valid")]
    assert len(test_choice) == 2 and (test_choice["diff"] >= 0).all()  # the best test score can only flatter
    # The same images on both sides of the encoding pair give the same result.
    enc = df[(df["knob"] == "encoding") & (df["metric"] == "test_accuracy")]
    assert len(enc) == 2 and enc["value"].nunique() == 1
    enc_draws = df[(df["knob"] == "encoding") & (df["metric"] != "test_accuracy")]
    assert set(enc_draws["metric"]) == {"test_accuracy_10pc"}  # the pair's own draw size, named so
    # and its own scale: the smoke subset of the pair's own data (400 / 200 images), named so
    assert set(df[df["knob"] == "encoding"]["scale"]) == {"400 train / 200 test images of the pair's own data"}
    assert all("smoke" in s for s in df[df["knob"] != "encoding"]["scale"])
    skipped = df[df["metric"] == ""]
    assert set(skipped["knob"]) == {"batchnorm", "GAN length"}  # random D: no GAN data; one length
    md = (tmp_path / "results" / "sensitivity.md").read_text()
    assert "Largest effects" in md and "NOT a valid protocol" in md and "random-init D (svhn32)" in md
    runs = mlflow.search_runs(experiment_names=["sensitivity"])
    assert set(runs["status"]) == {"FINISHED"} and len(runs) == 1 + len(df[df["metric"] != ""]) // 2 - 1


def test_a_rerun_replaces_its_own_rows_only(tiny_folder, tmp_path):
    for extractor, knobs in (("pixels", "scaling"), ("pixels", "scaling"), ("random-d", "scaling"),
                             ("random-d", "pooling")):
        sensitivity.main(_argv(tiny_folder, tmp_path, "--extractor", extractor, "--knobs", knobs,
                               "--split-seeds", "2"))
    df = pd.read_csv(tmp_path / "results" / "sensitivity.csv")
    per = df.groupby("extractor").size()
    assert per["pixels"] == 2 + 3 * 2 + 2  # default, 3 scalings, test choice: the rerun replaced its rows
    assert per["random-init D (svhn32)"] == 2 + 3 * 2 + 3 * 2 + 2  # a run with another knob added its rows
    md = (tmp_path / "results" / "sensitivity.md").read_text()
    header = next(line for line in md.split("## random-init D (svhn32)")[1].splitlines() if "MLflow runs" in line)
    assert header.count(" (commit ") == 2 and "scaling)" in header and "pooling" in header  # each run named
    from benchmarks.report.render import write_report
    report = write_report(tmp_path / "results").read_text()
    assert "## Sensitivity to the unstated choices" in report and "largest effects" in report
    assert (tmp_path / "results" / "report" / "sensitivity_1.png").stat().st_size > 0  # one chart per extractor


@pytest.mark.parametrize("argv, message", [
    (["--extractor", "pixels,random-d"], "takes one extractor"),
    (["--extractor", "dcgan"], "train it with the CIFAR-10 probe first"),
    (["--extractor", "pixels", "--knobs", "colour"], "unknown knob"),
    (["--extractor", "pixels", "--encoding-pair", "only-one"], "give two data specs"),
    (["--extractor", "pixels", "--bn-mode", "batch"], "one of the knob's settings"),
])
def test_bad_options_are_one_line_errors(tiny_folder, tmp_path, argv, message):
    with pytest.raises(UserError, match=message):
        sensitivity.main(_argv(tiny_folder, tmp_path, *argv))


def test_pooling_and_layer_columns_match_the_paper_features():
    torch.manual_seed(0)
    d = build_gan("svhn32", 0)[1].eval()
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    full = pooled_features(d, images)
    maps = d.features(images.float() / 127.5 - 1)
    last = torch.nn.functional.adaptive_max_pool2d(maps[-1], 4).flatten(1)
    assert torch.allclose(full[:, layer_columns(d.arch.widths, (2,))], last, atol=1e-6)
    avg = pooled_features(d, images, pool="avg", grid=1)
    assert torch.allclose(avg, torch.cat([m.mean((2, 3)) for m in maps], 1), atol=1e-5)
    with pytest.raises(ValueError, match="pool must be one of"):
        pooled_features(d, images, pool="median")
    with pytest.raises(ValueError, match="non-empty subset"):
        layer_columns(d.arch.widths, (3,))


def test_scalings_do_what_they_say():
    x = torch.tensor([[3.0, 0.0, 1.0], [1.0, 0.0, 1.001], [2.0, 0.0, 0.999]])
    std = evaluation.SCALINGS["standardise"](x).apply_(x.clone())
    assert torch.allclose(std.std(0, unbiased=False)[0], torch.tensor(1.0)) and (std[:, 1] == 0).all()
    coates = evaluation.SCALINGS["coates"](x).apply_(x.clone())
    assert coates[:, 2].abs().max() < 0.02 < std[:, 2].abs().max()  # a near-constant feature stays small
    l2 = evaluation.SCALINGS["l2"](x).apply_(x.clone())
    assert torch.allclose(l2.norm(dim=1), torch.full((3,), 3 ** 0.5))  # norm sqrt(d): the C grid's scale
    assert torch.allclose(l2 / l2.norm(dim=1, keepdim=True), x / x.norm(dim=1, keepdim=True))  # same directions


class _Fixed:
    """Predicts a fixed rule per hyperparameter, whatever it is fitted on."""
    name, hyper = "fixed", "h"

    def __init__(self, rules):
        self.rules, self.fits = rules, []

    def sweep(self, x, y, grid, until=None, thin=None):
        self.fits.append(len(x))
        return {h: self.rules[h] for h in grid}

    def diagnostics(self):
        return []


def test_cross_validation_and_test_scores_never_feed_the_choice():
    y = torch.arange(40) % 2
    x = y[:, None].float()  # the feature is the label on train...
    x_test, y_test = torch.ones(10, 1), torch.zeros(10, dtype=torch.long)  # ...and lies on test
    rules = {1: lambda q: q[:, 0].round().long(), 2: lambda q: torch.zeros(len(q), dtype=torch.long)}
    # h=1 reads the feature: 100% on held-out train rows, 0% on test; h=2 says "0": 50%, then 100% on test.
    clf = _Fixed(rules)
    assert evaluation.cv_scores(clf, x, y, [1, 2], folds=4, seed=0) == {1: 100.0, 2: 50.0}
    assert clf.fits == [30] * 4  # each fold fits on the other three quarters
    for cv in (0, 4):
        ev = evaluation.full_data_eval(_Fixed(rules), x, y, x_test, y_test, slice(30, 40), slice(0, 30), [1, 2],
                                       cv_folds=cv, test_every=True)
        assert ev.chosen == 1 and ev.test_accuracy == 0.0 and ev.test_by_hyper == {1: 0.0, 2: 100.0}
        draws = evaluation.label_draws_eval(_Fixed(rules), x, y, x_test, y_test, slice(30, 40), torch.arange(30),
                                            per_class=6, n_draws=2, seed=0, grid=[1, 2], cv_folds=cv,
                                            test_every=True)
        assert draws.chosen == 1 and draws.test_accuracy == 0.0 and draws.test_by_hyper == {1: 0.0, 2: 100.0}


@pytest.mark.parametrize("name", ["hinge", "logistic"])
def test_the_other_losses_classify_separable_data(name):
    g = torch.Generator().manual_seed(1)
    y = torch.arange(300) % 3
    x = torch.randn(300, 4, generator=g) * 0.3 + torch.eye(3, 4)[y] * 3
    predictors = CLASSIFIERS[name](3).sweep(x, y, [1.0])
    assert (predictors[1.0](x) == y).float().mean() > 0.97


@pytest.mark.parametrize("name", ["svm", "hinge", "logistic"])
def test_wide_data_is_fitted_on_its_thin_factor_to_the_same_model(name, monkeypatch):
    """Fewer rows than features: the fit on ``F`` (X = F Q^T) mapped back by Q is the fit on X."""
    from benchmarks.classifiers import registry as classifiers
    from benchmarks.classifiers.hinge import hinge_objective
    from benchmarks.classifiers.svm import svm_objective

    g = torch.Generator().manual_seed(2)
    y = torch.arange(60) % 3
    x = torch.randn(60, 200, generator=g) + 0.5 * torch.randn(3, 200, generator=g)[y]
    x_new = torch.randn(50, 200, generator=g)
    thin_clf = CLASSIFIERS[name](3)
    thin = thin_clf.sweep(x, y, [1e-3, 1.0])
    monkeypatch.setattr(classifiers, "THIN_ABOVE", math.inf)  # the same sweep on X itself
    full_clf = CLASSIFIERS[name](3)
    full = full_clf.sweep(x, y, [1e-3, 1.0])
    assert [f["fit_dim"] for f in thin_clf.diagnostics()] == [60, 60]
    assert [f["fit_dim"] for f in full_clf.diagnostics()] == [200, 200]

    def objective(m, c):  # each loss's own primal, on X
        if name == "svm":
            return svm_objective(m, x, y, c).sum()
        if name == "hinge":
            return hinge_objective(torch.cat([m.weight, m.bias[:, None]], 1).double(), x, y, c, 3).sum()
        loss = torch.nn.functional.cross_entropy(m.decision_function(x).double(), y, reduction="sum")
        return c * loss + 0.5 * m.weight.double().square().sum()

    for c in (1e-3, 1.0):
        a, b = thin[c].__self__, full[c].__self__
        assert a.weight.shape == b.weight.shape == (3, 200)
        assert abs(objective(a, c) / objective(b, c) - 1) < 1e-3  # the same optimum (to the solvers' tolerance)
        assert (a.predict(x_new) == b.predict(x_new)).float().mean() > 0.95


def test_the_hinge_solver_reaches_liblinears_optimum():
    """Parity with scikit-learn's LinearSVC(loss="hinge") solved to tight tolerance."""
    from sklearn.svm import LinearSVC

    from benchmarks.classifiers.hinge import fit_hinge, hinge_objective
    g = torch.Generator().manual_seed(0)
    y = torch.arange(400) % 4
    x = torch.randn(400, 30, generator=g) + 0.8 * torch.randn(4, 30, generator=g)[y]
    for C in (1e-2, 1.0):
        W, _ = fit_hinge(x, y, C, 4)
        ref = LinearSVC(loss="hinge", dual=True, C=C, tol=1e-10, max_iter=1_000_000).fit(x.double().numpy(), y.numpy())
        W_ref = torch.cat([torch.from_numpy(ref.coef_), torch.from_numpy(ref.intercept_)[:, None]], 1)
        ours, theirs = hinge_objective(W, x, y, C, 4), hinge_objective(W_ref, x, y, C, 4)
        assert ((ours - theirs) / theirs).abs().max() < 1e-3
        pred = (x.double() @ W[:, :-1].T + W[:, -1]).argmax(1)
        assert (pred == torch.from_numpy(ref.predict(x.double().numpy()))).float().mean() > 0.99


def test_the_d_knobs_ask_for_the_capability_not_the_class():
    """Any extractor declaring layers and extraction variants gets the batchnorm, layers and
    pooling settings; one without (pixels) gets one "not measurable" row per such knob."""
    import torch

    from baselines.interface import LayeredExtractor
    from baselines.pixels import PixelExtractor
    from benchmarks.studies.knobs import KNOBS, NOT_D, Setting, Skipped, plan

    class ThreeLayers:  # not a DCGANExtractor
        n_layers = 3

        def layer_columns(self, layers):
            return torch.tensor(layers)

        def with_extraction(self, **kw):
            return self

        def with_population_stats(self, images):
            return self

    def names(extractor, knob):
        return [(type(s).__name__, s.name) for s in plan(extractor, bn_data=None, encoding_pair=None, cv_folds=5,
                                                          knobs=(knob,), pretrained=True)[1:]]

    assert isinstance(ThreeLayers(), LayeredExtractor)
    assert names(ThreeLayers(), "layers") == [("Setting", "the last"), ("Setting", "the last two"),
                                              ("Setting", "layer 1 of 3 alone"), ("Setting", "layer 2 of 3 alone")]
    assert ("Setting", "2x2 max") in names(ThreeLayers(), "pooling")
    pixels = PixelExtractor()
    for knob in ("batchnorm", "layers", "pooling"):
        (only,) = plan(pixels, bn_data=None, encoding_pair=None, cv_folds=5, knobs=(knob,), pretrained=False)[1:]
        assert isinstance(only, Skipped) and only.reason == NOT_D
    every = plan(pixels, bn_data=None, encoding_pair=("a", "b"), cv_folds=5, knobs=tuple(KNOBS), pretrained=False)
    assert [s.knob for s in every][0] == "default" and {s.knob for s in every[1:]} == set(KNOBS)
    assert isinstance(every[0], Setting) and every[0].default


def test_a_table_says_how_its_default_draws_chose_c_from_its_rows_notes():
    from benchmarks.protocol.results import draws_choice_note
    from benchmarks.studies.sensitivity_table import draws_rule

    def table(notes):
        return pd.DataFrame([{"default": True, "metric": "test_accuracy", "setting": "the probe's pipeline",
                              "notes": ""},
                             {"default": True, "metric": "test_accuracy_400pc", "setting": "the probe's pipeline",
                              "notes": notes}])

    assert "label-honest); `C choice` measures the validation-split choice" in draws_rule(
        table(draws_choice_note(5, "C", 4_000)))
    assert "chose C on the validation split" in draws_rule(table(""))  # rows from before the label-honest default


def test_a_rerun_of_a_knob_drops_its_renamed_settings_and_keeps_the_knobs_not_asked_for():
    """A setting renamed between versions (the old name of today's default, say) must not linger
    beside the rows that replaced it; knobs the run was not asked for keep their rows."""
    from benchmarks.studies.sensitivity_table import SENSITIVITY, SensitivityRow

    def row(extractor, knob, setting, value=60.0):
        return SensitivityRow(extractor=extractor, preset="quick", data_sha256="abc", knob=knob, setting=setting,
                              metric="test_accuracy", value=value)

    old = SENSITIVITY.frame([row("d", "default", "the probe's pipeline"), row("d", "C choice", "an old name"),
                             row("d", "pooling", "2x2 max"), row("other D", "C choice", "an old name")])
    new = [row("d", "default", "the probe's pipeline", 61.0), row("d", "C choice", "a new name")]
    merged = SENSITIVITY.merge(old, new, sensitivity.knobs_rerun(("C choice",)))
    kept = set(zip(merged["extractor"], merged["knob"], merged["setting"], merged["value"]))
    assert kept == {("d", "default", "the probe's pipeline", 61.0), ("d", "C choice", "a new name", 60.0),
                    ("d", "pooling", "2x2 max", 60.0), ("other D", "C choice", "an old name", 60.0)}
    # without the rule only the keys match: the renamed setting stays
    assert "an old name" in set(SENSITIVITY.merge(old, new)[lambda df: df["extractor"] == "d"]["setting"])
