"""The release policy: who gets which image.

``model`` (the typed domain), ``transitions`` (the release state machine: the operator's
operations as pure functions), ``cohort`` (deterministic, sticky, exact-count selection) and
``engine`` (``decide()`` and the automatic transitions). All pure: no I/O, no clock.
"""
