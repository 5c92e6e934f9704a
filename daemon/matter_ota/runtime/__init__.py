"""The runtime shell: sockets, timers and services around the sans-IO core (anyio)."""
