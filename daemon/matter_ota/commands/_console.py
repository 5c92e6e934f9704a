"""What the release commands share: loading the provider config, opening the state store,
and turning the operator's arguments (percent, VID:PID) into values or one-line errors."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from matter_ota.cli import EXIT_USAGE, CliError
from matter_ota.commands._common import default_config_path
from matter_ota.config import ProviderConfig, load_provider
from matter_ota.operations import Console, OperationError, parse_percent
from matter_ota.policy.model import Product
from matter_ota.store import Store, StoreError
from matter_ota.yamlnodes import ConfigError


def load_provider_config(args: argparse.Namespace) -> ProviderConfig:
    """provider.yaml from ``--config`` (or the default path); an invalid file is a CliError."""
    path: Path = args.config if args.config is not None else default_config_path()
    try:
        return load_provider(path)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def state_dir(args: argparse.Namespace, provider: ProviderConfig) -> Path:
    """``--state-dir``, else the config's ``state_dir``."""
    return Path(args.state_dir) if args.state_dir is not None else provider.state_dir


def actor() -> str:
    """Who the audit log names: the CLI user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@contextmanager
def open_console(args: argparse.Namespace) -> Iterator[Console]:
    """The console for ``--config`` / ``--state-dir``; its errors become CliError."""
    provider = load_provider_config(args)
    try:
        store = Store.open(state_dir(args, provider))
    except StoreError as exc:
        raise CliError(str(exc)) from None
    try:
        yield Console(provider, store, actor=actor())
    except (OperationError, StoreError) as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()


def percent_arg(text: str) -> int:
    """argparse type for --percent: an integer 1..100, anything else a usage error."""
    try:
        return parse_percent(text)
    except OperationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def product_arg(text: str) -> Product:
    """argparse type for --product VID:PID (hex)."""
    try:
        return Product.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def channel_arg(text: str) -> str:
    """argparse type of ``--channel``: any non-empty name (the config says which exist)."""
    if not text:
        raise argparse.ArgumentTypeError("the channel name is empty")
    return text


def usage_error(message: str) -> CliError:
    """A CliError with the usage exit code (2)."""
    return CliError(message, EXIT_USAGE)
