from benchmarks.report.render import main
from dcgan_ref.runtime.errors import run_cli

run_cli(main)
