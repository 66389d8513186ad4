"""The plumbing every layer shares: errors, tracking, progress, checkpoints, distributed set-up,
the hardware and its measured limits."""
