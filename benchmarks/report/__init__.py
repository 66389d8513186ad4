"""REPORT.md and its charts, rendered from the committed rows alone (``python -m benchmarks.report``)."""
