"""Emulated OTA requestors built from our own stack (CASE initiator, IM invoke, BDX receiver).

- :mod:`.requestor`: one requestor's update walk, sans-IO.
- :mod:`.invoke`: the IM invoke client it uses.
- :mod:`.fleet`: a provider node and many requestors in memory, time stepped by hand.
- :mod:`.udp`: the same requestors over UDP against a running daemon (``scripts/fleet.py``).
"""
