"""The standardized protocols: their specs and presets, the run context, the data and splits,
the evaluation and classifiers' choices, the runner, and the one results store every study writes to."""
