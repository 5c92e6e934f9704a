"""The OTA Provider (Matter Core 11.20): the policy engine and BDX behind the cluster.

- :mod:`.core`: :class:`~.core.OtaProvider`, the cluster's decider, the BDX lookup and the
  outcome bookkeeping (transfers, NotifyUpdateApplied, failure detection, auto-stop).
- :mod:`.uri`: the ImageURI (``bdx://<node id>/<designator>``) and its TC-SU-3.1 checks.
- :mod:`.images`: opening the offered image (firmware folder, DCL cache).
- :mod:`.node`: wiring the provider onto a node (IM cluster, BDX server, timers, events).
"""
