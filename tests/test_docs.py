"""The README and docs/ pages name only commands and files that exist: every `nox -s` session,
every `python -m` module, every relative link."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SESSIONS = set(re.findall(r"^@nox.session\ndef (\w+)\(", (REPO / "noxfile.py").read_text(), re.M))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_and_link_exists(page):
    text = page.read_text()
    for name in re.findall(r"nox -s (\w+)", text):
        assert name in SESSIONS, f"{page.name}: nox -s {name} is not a session"
    for module in re.findall(r"python3? -m ([\w.]+)", text):
        if module.split(".")[0] in ("benchmarks", "baselines", "dcgan_ref"):
            assert importlib.util.find_spec(module) is not None, f"{page.name}: python -m {module}"
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)|src=\"([^\"]+)\"", text):
        target = next(t for t in target if t)
        if not target.startswith(("http://", "https://")):
            assert (page.parent / target).exists(), f"{page.name}: link {target} does not exist"


def test_the_readme_is_a_front_door():
    assert len((REPO / "README.md").read_text().splitlines()) <= 120
