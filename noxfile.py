"""Sessions: ``nox -s cifar10_probe``, ``nox -s svhn_1000``, ``nox -s reproduce``, ``nox -s tests``,
``nox -s throughput``, ``nox -s figures``, ``nox -s sensitivity``.

Every session runs in ONE environment per machine (default ``~/.cache/dcgan-repro/venv``,
override with ``DCGAN_REPRO_VENV``): torch is installed there once, not once per session.
The project itself is installed editable, so the checkout you run from is the code that runs.
Arguments after ``--`` go to the command, e.g. ``nox -s cifar10_probe -- --preset quick``.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"  # the shared environment below instead of one per session
nox.options.sessions = ["tests"]

ROOT = Path(__file__).resolve().parent
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]  # the build this project is pinned to (CUDA wheels; runs on CPU)


def _venv() -> Path:
    default = Path.home() / ".cache" / "dcgan-repro" / f"venv-py{sys.version_info.major}.{sys.version_info.minor}"
    return Path(os.environ.get("DCGAN_REPRO_VENV", default))


def _python(session: nox.Session) -> str:
    """The shared environment's interpreter, created and brought up to date on demand.

    ``DCGAN_REPRO_USE_CURRENT_PYTHON=1`` runs on the interpreter nox itself runs on, with the
    packages it already has (GPU machines with their own torch and no package index).
    """
    if os.environ.get("DCGAN_REPRO_USE_CURRENT_PYTHON") == "1":
        session.env["PYTHONPATH"] = str(ROOT)
        return sys.executable
    venv = _venv()
    python = venv / "bin" / "python"
    if not python.exists():
        session.log(f"creating the shared environment {venv} (once per machine)")
        session.run(sys.executable, "-m", "venv", str(venv), external=True)
    stamp = venv / ".dcgan-repro-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + str(ROOT).encode()).hexdigest()
    if not stamp.exists() or stamp.read_text() != want:
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        has_torch = session.run(str(python), "-c", "import torch", external=True, success_codes=[0, 1],
                                silent=True, log=False) is True
        if not has_torch:
            session.log("installing torch (once per machine)")
            session.run(*pip, *TORCH, external=True)
        session.run(*pip, "-e", f"{ROOT}[dev]", external=True)
        stamp.write_text(want)
    return str(python)


@nox.session
def tests(session: nox.Session) -> None:
    """Lint, then the test suite (CPU, a few minutes), including the real-data regression check.

    The fast lane for day-to-day work: ``nox -s tests -- -m "not slow" -q``.
    """
    python = _python(session)
    session.run(python, "-m", "ruff", "check", str(ROOT), external=True)  # lint is part of the tests
    # One test process per core, one torch thread each (pytest-xdist; the slow tests start first, see
    # tests/conftest.py): on 2 cores the suite's many small tests no longer wait behind one another.
    # --durations: every run (CI's included) shows its slowest tests, so a slow one is seen the day it lands.
    session.env["OMP_NUM_THREADS"] = "1"
    default = ["-q", "-n", "auto", "--dist", "worksteal", "--durations=15"]
    session.run(python, "-m", "pytest", *default, *session.posargs, external=True)  # later flags win


@nox.session
def cifar10_probe(session: nox.Session) -> None:
    """CIFAR-10 probe (Table 1). Default data: data/cifar10; see README for --data/--preset."""
    session.run(_python(session), "-m", "benchmarks.cifar10_probe", *session.posargs, external=True)


@nox.session
def svhn_1000(session: nox.Session) -> None:
    """SVHN 1,000-label protocol (Table 2). Needs the official .mat files (see README)."""
    session.run(_python(session), "-m", "benchmarks.svhn_1000", *session.posargs, external=True)


@nox.session
def sensitivity(session: nox.Session) -> None:
    """How far each unstated choice moves the CIFAR-10 probe: results/sensitivity.{csv,md} (see README)."""
    session.run(_python(session), "-m", "benchmarks.studies.sensitivity", *session.posargs, external=True)


@nox.session
def reproduce(session: nox.Session) -> None:
    """Tables 1 and 2 within --budget-min, then results/REPORT.md (see README)."""
    session.run(_python(session), "-m", "benchmarks.reproduce", *session.posargs, external=True)


@nox.session
def throughput(session: nox.Session) -> None:
    """GPU throughput suite; on a CPU a small correctness check that writes nothing."""
    python = _python(session)
    session.run(python, "-m", "benchmarks.throughput", *session.posargs, external=True)


@nox.session
def cpu_step(session: nox.Session) -> None:
    """The GAN training step on this CPU, setting by setting, against its GEMM rate (rows per ISA)."""
    session.run(_python(session), "-m", "benchmarks.throughput.cpu_step", *session.posargs, external=True)


@nox.session
def gan_run(session: nox.Session) -> None:
    """A GAN training that outlives a session: ``start`` (resumes when run again), ``status``."""
    session.run(_python(session), "-m", "benchmarks.gan_run", *session.posargs, external=True)


@nox.session
def figures(session: nox.Session) -> None:
    """The paper's figures from one G/D pair into docs/figures/, and docs/FIGURES.md from their JSON."""
    session.run(_python(session), "-m", "dcgan_ref.figures", *session.posargs, external=True)
