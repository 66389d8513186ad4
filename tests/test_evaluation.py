"""Evaluation mechanics: splits, draws, standardisation, choice on validation only."""
import pytest
import torch

from benchmarks.classifiers.registry import L2SVMClassifier
from benchmarks.protocol import evaluation
from benchmarks.protocol.splits import class_balanced_split, draw_per_class


def _labels(n_per_class=50, classes=10):
    return torch.arange(classes).repeat_interleave(n_per_class)


def test_class_balanced_split_is_balanced_disjoint_and_seeded():
    y = _labels()
    val, rest = class_balanced_split(y, 100, seed=0)
    assert torch.bincount(y[val]).tolist() == [10] * 10
    assert len(set(val.tolist()) & set(rest.tolist())) == 0 and len(val) + len(rest) == len(y)
    assert torch.equal(val, class_balanced_split(y, 100, seed=0)[0])
    assert not torch.equal(val, class_balanced_split(y, 100, seed=1)[0])


def test_draw_per_class_stays_in_the_pool():
    y = _labels()
    val, rest = class_balanced_split(y, 100, seed=0)
    draw = draw_per_class(y, rest, 7, seed=3)
    assert torch.bincount(y[draw]).tolist() == [7] * 10
    assert set(draw.tolist()) <= set(rest.tolist())
    with pytest.raises(ValueError, match="fewer than 41 per class"):
        draw_per_class(y, rest, 41, seed=0)


def test_standardizer_uses_training_statistics():
    x = torch.randn(200, 5) * torch.tensor([1.0, 2, 3, 4, 5]) + 7
    std = evaluation.Standardizer.fit(x)
    z = std(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(5), atol=1e-4, rtol=0)
    constant = evaluation.Standardizer.fit(torch.ones(10, 2))  # zero variance does not divide by zero
    assert torch.isfinite(constant(torch.ones(3, 2))).all()


class _SpyClassifier:
    """Records what each fit saw; predicts a fixed answer per hyperparameter."""
    name, hyper = "spy", "h"

    def __init__(self, answers):
        self.answers, self.fits = answers, []

    def sweep(self, x, y, grid, until=None, thin=None):  # fits every value at once, like KNN: until unused
        self.fits.append(len(x))
        return {h: self.answers[h] for h in grid}


def test_full_data_eval_chooses_on_validation_and_refits_on_all_training_data():
    y = _labels(20, 2)
    x = y[:, None].float()  # the feature is the label on train and validation...
    x_test, y_test = torch.ones(10, 1), torch.zeros(10, dtype=torch.long)  # ...and lies on test
    val, rest = class_balanced_split(y, 10, seed=0)
    # h=2 reads the feature: 100% on validation, 0% on test; h=1 says "0": 50% on validation, 100% on test.
    # Choosing on validation must pick h=2 and report 0%; choosing on test would report 100%.
    clf = _SpyClassifier({1: lambda q: torch.zeros(len(q), dtype=torch.long), 2: lambda q: q[:, 0].round().long()})
    ev = evaluation.full_data_eval(clf, x, y, x_test, y_test, val, rest, grid=(1, 2))
    assert ev.val_scores == {1: 50.0, 2: 100.0} and ev.chosen == 2
    assert clf.fits == [len(rest), len(y)]
    assert ev.test_accuracy == 0.0


def test_choice_ties_go_to_the_first_grid_value():
    assert evaluation._choose({1e-3: 80.0, 1e-4: 80.0, 1e-2: 70.0}) == 1e-4


def test_label_draws_choose_on_mean_validation_not_on_test():
    y = _labels(20, 2)
    x = y[:, None].float()
    x_test, y_test = torch.ones(10, 1), torch.zeros(10, dtype=torch.long)
    val, rest = class_balanced_split(y, 10, seed=0)
    clf = _SpyClassifier({1: lambda q: torch.zeros(len(q), dtype=torch.long), 2: lambda q: q[:, 0].round().long()})
    ev = evaluation.label_draws_eval(clf, x, y, x_test, y_test, val, rest, per_class=3, n_draws=3, seed=0,
                                     grid=(1, 2))
    assert ev.chosen == 2 and ev.test_accuracy == 0.0 and clf.fits == [6, 6, 6]


def test_label_draws_report_mean_and_std_over_draws():
    torch.manual_seed(0)
    centers = torch.randn(3, 20) * 5
    y = torch.arange(3).repeat_interleave(60)
    x = centers[y] + torch.randn(len(y), 20)
    y_test = torch.arange(3).repeat_interleave(20)
    x_test = centers[y_test] + torch.randn(len(y_test), 20)
    val, rest = class_balanced_split(y, 30, seed=0)
    ev = evaluation.label_draws_eval(L2SVMClassifier(3), x, y, x_test, y_test, val, rest, per_class=5,
                                n_draws=4, seed=0, grid=(1e-3, 1e-1))
    assert len(ev.draws) == 4 and len({d["seed"] for d in ev.draws}) == 4
    accs = torch.tensor([d["test_accuracy"] for d in ev.draws])
    assert ev.test_accuracy == pytest.approx(accs.mean().item())
    assert ev.test_std == pytest.approx(accs.std().item())
    assert ev.test_accuracy > 90  # well-separated clusters


def test_the_all_labels_sweep_stops_only_after_validation_clearly_falls():
    """A scripted classifier: validation accuracy per C is known, so where the sweep stops is too."""
    from benchmarks.protocol import evaluation

    curve = {1: 50.0, 2: 60.0, 3: 70.0, 4: 69.8, 5: 65.0, 6: 64.0, 7: 80.0}  # 7 is never reached

    class Scripted:
        name, hyper = "scripted", "C"

        def __init__(self):
            self.fitted = []

        def sweep(self, x, y, grid, until=None, thin=None):
            out = {}
            for c in grid:
                self.fitted.append(c)
                # predicts the true label for the first curve[c]% of the 100 validation rows
                out[c] = lambda q, c=c: torch.where(torch.arange(len(q)) < curve[c], q[:, 0].long(), -1)
                if until is not None and until(c, out[c]):
                    break
            return out

        def diagnostics(self):
            return []

    y = torch.arange(200) % 2
    x = y[:, None].float().repeat(1, 3)
    clf = Scripted()
    ev = evaluation.full_data_eval(clf, x, y, x[:10], y[:10], slice(100, 200), slice(0, 100), list(curve))
    # 4 is within 0.5 of the best (70): not a decline; 5 and 6 are: stop after 6.
    assert clf.fitted[:6] == [1, 2, 3, 4, 5, 6] and 7 not in clf.fitted
    assert ev.chosen == 3 and list(ev.val_scores) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("name", ["svm", "knn"])
def test_cross_validation_on_a_draws_thin_factor_is_cross_validation_on_the_draw(name):
    """Each fold's rows lie in the draw's row space, where the thin factor keeps every inner product and
    distance: the fold scores (so the choice) are those computed on the wide features themselves."""
    from benchmarks.classifiers.registry import CLASSIFIERS, ThinFactor

    g = torch.Generator().manual_seed(3)
    y = torch.arange(90) % 3
    x = torch.randn(90, 400, generator=g) + 0.6 * torch.randn(3, 400, generator=g)[y]
    grid = [1e-3, 1e-2, 1e-1] if name == "svm" else [1, 3, 5]
    wide = evaluation.cv_scores(CLASSIFIERS[name](3), x, y, grid, 5, 0)
    thin = evaluation.cv_scores(CLASSIFIERS[name](3), ThinFactor(x).F, y, grid, 5, 0)
    assert wide.keys() == thin.keys() and all(abs(wide[h] - thin[h]) <= 100 / 90 for h in grid), (wide, thin)
    assert evaluation._choose(wide) == evaluation._choose(thin)
