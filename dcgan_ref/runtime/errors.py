"""Errors a user can act on, and the one place that turns them into a clean exit."""
from __future__ import annotations

import signal
import sys
from typing import Callable, NoReturn


class UserError(RuntimeError):
    """Bad input or configuration: the message says what is wrong and what to do."""


class DataError(UserError):
    """Bad/missing data: the message names the file, what was expected, and where to put it."""


class TrainingDiverged(RuntimeError):
    """A GAN loss went NaN/inf: the run stops and is marked FAILED."""


class Terminated(BaseException):
    """SIGTERM (what ``timeout`` and batch schedulers send) arrived.  A BaseException, like
    KeyboardInterrupt, so that no library's ``except Exception`` swallows or rewraps it."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(f"stopped by signal {signal.Signals(signum).name}")


def run_cli(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> NoReturn:
    """Run a CLI entry point; user-facing errors print one line and exit non-zero.

    SIGTERM becomes an exception inside ``main``, like Ctrl-C's KeyboardInterrupt, so every
    ``with`` block unwinds: open MLflow runs end FAILED, checkpoints already written stay.
    """
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        main(argv)
    except (UserError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as e:
        print(f"error: training diverged: {e}", file=sys.stderr)
        sys.exit(3)
    except Terminated as e:
        print(f"error: {e}; the MLflow run is marked FAILED, the last checkpoint kept", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        print("error: interrupted; the MLflow run is marked FAILED, the last checkpoint kept", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.exit(0)
