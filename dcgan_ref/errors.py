"""Errors a user can act on, and the one place that turns them into a clean exit."""
from __future__ import annotations

import sys
from typing import Callable, NoReturn


class UserError(RuntimeError):
    """Bad input or configuration: the message says what is wrong and what to do."""


class TrainingDiverged(RuntimeError):
    """A GAN loss went NaN/inf: the run stops and is marked FAILED."""


def run_cli(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> NoReturn:
    """Run a CLI entry point; user-facing errors print one line and exit non-zero."""
    from dcgan_ref.data import DataError

    try:
        main(argv)
    except (UserError, DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as e:
        print(f"error: training diverged: {e}", file=sys.stderr)
        sys.exit(3)
    sys.exit(0)
