"""Options shared by several sub-commands."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from matter_ota.cli import EXIT_USAGE, CliError
from matter_ota.config import NodeIdentity, ProviderConfig, load_provider
from matter_ota.yamlnodes import ConfigError

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


def provider_config(args: argparse.Namespace) -> ProviderConfig | None:
    """``--config`` (which must exist), else the default config if there is one, else None."""
    explicit: Path | None = getattr(args, "config", None)
    path = explicit or default_config_path()
    if not path.exists():
        if explicit is not None:
            raise CliError(f"--config {path}: no such file", EXIT_USAGE)
        return None
    try:
        return load_provider(path)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def node_identity(args: argparse.Namespace) -> NodeIdentity:
    """The config's ``node:`` identity; ``--vendor-id`` / ``--product-id`` / ``--device-name``,
    where the command has them, win so that Basic Information, mDNS and the setup code agree."""
    config = provider_config(args)
    identity = config.node if config is not None else NodeIdentity()
    overrides = {name: getattr(args, name) for name in ("vendor_id", "product_id", "device_name")
                 if getattr(args, name, None) is not None}
    return dataclasses.replace(identity, **overrides)
