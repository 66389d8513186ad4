"""docs/FIGURES.md is generated from the figures' JSON: the committed page is what that JSON
renders, and every number on it moves with its file."""
from __future__ import annotations

import json
import shutil

from dcgan_ref.figures import page


def test_the_committed_page_is_what_the_committed_json_renders():
    assert (page.FIGURES_DIR.parent / "FIGURES.md").read_text() == page.render(page.FIGURES_DIR), (
        "docs/FIGURES.md is stale or was edited by hand: run python -m dcgan_ref.figures.page")


def test_numbers_come_from_the_files(tmp_path):
    figures = tmp_path / "figures"
    shutil.copytree(page.FIGURES_DIR, figures)
    walk = figures / "newmu-svhn" / "latent_walk.json"
    d = json.loads(walk.read_text())
    before = page.render(figures)
    assert f"mean step {d['mean_step']:.3f} RMS" in before
    d["mean_step"] = 0.777
    walk.write_text(json.dumps(d))
    dedup = json.loads((figures / "dedup.json").read_text())
    dedup["n_near_duplicates"] = 4321
    (figures / "dedup.json").write_text(json.dumps(dedup))
    after = page.render(figures)
    assert "mean step 0.777 RMS" in after and "**4,321 of the 10,000 test images" in after


def test_a_missing_figure_is_named_not_invented(tmp_path):
    figures = tmp_path / "figures"
    (figures / "m").mkdir(parents=True)
    (figures / "m" / "latent_walk.json").write_text(json.dumps(
        {"model": "m", "mean_step": 0.1, "max_step": 0.2, "max_jump_ratio": 2.0, "independent_samples_rms": 0.3}))
    text = page.render(figures)
    assert text.count("not drawn") == 3 and "No de-duplication run yet" in text and "No collapse-check" in text
    assert page.write(figures) == tmp_path / "FIGURES.md"
