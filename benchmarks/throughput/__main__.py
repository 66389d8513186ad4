"""``python -m benchmarks.throughput``: see :mod:`benchmarks.throughput.cli`."""
from benchmarks.throughput.cli import main
from dcgan_ref.runtime.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
