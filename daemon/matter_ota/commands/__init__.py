"""Sub-commands of `matter-ota`; each module defines ``register(subparsers)``."""
