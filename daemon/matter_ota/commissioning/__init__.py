"""Commissioning: the state machine and the node side of the fail-safe and credentials."""
