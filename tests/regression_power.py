"""Shows the regression check (tests/test_regression.py) catches known bugs: plants each one
in a fresh process, runs the check's command, and prints whether the check fails.

    python tests/regression_power.py [--data ../shared/data/cifar10_jpeg.tar.xz] [bug ...]

Bugs: baseline (none), bn-train-mode, unstandardised, labels-shifted, gan-not-training.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUGS = ("baseline", "bn-train-mode", "unstandardised", "labels-shifted", "gan-not-training")


def plant(bug: str) -> None:
    """Monkeypatch one bug into this process."""
    import torch

    if bug == "bn-train-mode":  # extraction forgets d.eval() and keeps the stored (class-sorted) order
        import torch.nn.functional as F

        from dcgan_ref import extractor
        from dcgan_ref.datasets.loading import to_unit_range

        @torch.no_grad()
        def features_in_train_mode(d, images, *, grid=4, batch_size=500, **_):
            d.train()
            return torch.cat([torch.cat([F.adaptive_max_pool2d(m, grid).flatten(1)
                                         for m in d.features(to_unit_range(images[s:s + batch_size]))], 1)
                              for s in range(0, len(images), batch_size)])

        extractor.pooled_features = features_in_train_mode
    elif bug == "unstandardised":
        from benchmarks.protocol import runner as protocol

        dim = lambda x: x.shape[1]  # noqa: E731
        protocol.Standardizer.fit = classmethod(lambda cls, x, **_: cls(torch.zeros(dim(x)), torch.ones(dim(x))))
    elif bug == "labels-shifted":  # an off-by-one in the training labels
        from benchmarks.protocol import runner as protocol

        load = protocol.load_data

        def shifted(run, log=print):
            data = load(run, log)
            data.train = dataclasses.replace(data.train, labels=(data.train.labels + 1) % len(data.train.classes))
            return data

        protocol.load_data = shifted
    elif bug == "gan-not-training":  # the optimiser never moves the weights
        from dcgan_ref import step

        make = step.make_adam
        step.make_adam = lambda module, **kw: make(module, **(kw | {"lr": 0.0}))
    elif bug != "baseline":
        raise SystemExit(f"unknown bug {bug!r}; choose from {', '.join(BUGS)}")


def child(bug: str, data: str) -> None:
    sys.path[:0] = [str(REPO), str(REPO / "tests")]
    plant(bug)
    import test_regression as check

    with tempfile.TemporaryDirectory() as out:
        got = check.measure(Path(data), Path(out))
    print(json.dumps({"bug": bug, "got": got, "failures": check.failures(got)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "cifar10_jpeg.tar.xz"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("bugs", nargs="*", default=list(BUGS))
    args = p.parse_args()
    if args.child:
        return child(args.child, args.data)
    for bug in args.bugs:
        out = subprocess.run([sys.executable, __file__, "--data", args.data, "--child", bug],
                             capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith('{"bug"')]
        if out.returncode or not lines:
            print(f"{bug}: the run itself failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
            continue
        result = json.loads(lines[-1])
        verdict = "CHECK FAILS" if result["failures"] else "check passes"
        print(f"{bug}: {verdict}; {result['got']}; {'; '.join(result['failures'])}", flush=True)


if __name__ == "__main__":
    main()
