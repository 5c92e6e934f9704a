"""Bulk Data Exchange (Matter Core spec 11.22): streaming OTA images to many devices at once.

- :mod:`.messages`: the wire format, status codes and :class:`~.messages.BdxError`.
- :mod:`.sender`: the provider's sans-IO sender (negotiation, state table, events).
- :mod:`.transfers`: the transfer table (limits, one per device, idle timeouts).
- :mod:`.receiver`: the requestor's sans-IO receiver (emulator, tests).
- :mod:`.server` / :mod:`.client`: both on the node's dispatch table and exchanges.
- :mod:`.image_source`: reading an image by offset (``os.pread``), never whole.
"""
