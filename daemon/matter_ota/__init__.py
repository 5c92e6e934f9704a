"""matter-ota-provider: a Matter OTA Provider daemon in pure Python."""

__version__ = "0.1.0"
