"""Studies built on the protocol: the sensitivity table (one knob changed at a time)."""
