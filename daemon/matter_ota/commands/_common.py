"""Options shared by several sub-commands."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG_LOCAL = Path("config/provider.yaml")
DEFAULT_CONFIG_SYSTEM = Path("/etc/matter-ota/provider.yaml")


def default_config_path() -> Path:
    """`config/provider.yaml` under the current directory, else the system-wide file."""
    return DEFAULT_CONFIG_LOCAL if DEFAULT_CONFIG_LOCAL.exists() else DEFAULT_CONFIG_SYSTEM


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="provider config (default: config/provider.yaml here, else "
        "/etc/matter-ota/provider.yaml)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="state directory (default: the config's state_dir)",
    )
