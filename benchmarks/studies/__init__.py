"""Studies built on the protocol: the sensitivity table and the whole-paper reproduction."""
