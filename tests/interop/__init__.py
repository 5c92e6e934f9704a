"""Interop tests against peers we did not write, run inside network namespaces."""
