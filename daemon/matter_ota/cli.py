"""`matter-ota`: the operator's command line.

Each sub-command lives in its own module under :mod:`matter_ota.commands` and exposes
``register(subparsers)``; modules are discovered, so adding a command touches no shared file.
Expected failures raise :class:`CliError` and end with a one-line message and a meaningful
exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from matter_ota import __version__, commands

# Exit codes scripts can rely on.
EXIT_OK = 0
EXIT_FAILURE = 1  # the thing asked about is wrong (invalid image, refused edit, ...)
EXIT_USAGE = 2  # the command line itself is wrong (argparse uses 2 too)


class CliError(Exception):
    """An expected failure: printed as ``matter-ota: error: <message>``, exit ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matter-ota",
        description="Matter OTA Provider daemon and release console.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int | None = args.func(args)
    except CliError as exc:
        print(f"matter-ota: error: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    return EXIT_OK if result is None else result


if __name__ == "__main__":
    # Under `python -m matter_ota.cli` this file runs as __main__, a second copy of the module:
    # commands raise matter_ota.cli.CliError, which __main__.main would not catch. Run the
    # imported module's main instead.
    from matter_ota.cli import main as _main

    sys.exit(_main())
