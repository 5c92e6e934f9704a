"""`matter-ota`: the operator's command line.

Each sub-command lives in its own module under :mod:`matter_ota.commands` and exposes
``register(subparsers)``; modules are discovered, so adding a command touches no shared file.
Only the module of the command being run is imported (see :func:`build_parser`): name a module
after its command (``setup-code`` -> ``setup_code.py``) and keep its imports to what it runs.
Expected failures raise :class:`CliError` and end with a one-line message and a meaningful
exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from matter_ota import __version__, commands

# Exit codes scripts can rely on.
EXIT_OK = 0
EXIT_FAILURE = 1  # the thing asked about is wrong (invalid image, refused edit, ...)
EXIT_USAGE = 2  # the command line itself is wrong (argparse uses 2 too)


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped (``\\r``, ``\\x1e``):
    an error message quotes what the user typed and must stay one line on the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _Parser(argparse.ArgumentParser):
    """argparse, with the one error line kept one line (it quotes the arguments)."""

    def error(self, message: str) -> NoReturn:
        super().error(one_line(message))


class CliError(Exception):
    """An expected failure: printed as ``matter-ota: error: <message>``, exit ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def command_modules() -> list[str]:
    """The names of the sub-command modules, found without importing them."""
    return sorted(
        m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")
    )


def _named_command(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names: its first word that is not an option (the top-level
    parser has no option taking a value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _asks_help(argv: Sequence[str]) -> bool:
    return any(w == "-h" or (len(w) > 2 and "--help".startswith(w)) for w in argv)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the sub-commands that parsing ``argv`` needs (all without ``argv``).

    Importing a command module imports what its command runs on (the node, crypto, the state
    store...), so only the module that registers the command ``argv`` names is imported: the one
    named after it first, then the others in order until one has registered it. ``--version``
    needs none; ``--help``, no command or an unknown one need all (the list of choices).
    """
    parser = _Parser(
        prog="matter-ota",
        description="Matter OTA Provider daemon and release console.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    names = command_modules()
    wanted = _named_command(argv) if argv is not None else None
    if wanted is not None and argv is not None and _asks_help(argv[: list(argv).index(wanted)]):
        wanted = None  # `matter-ota -h image`: the top-level help, with every command
    if wanted is None and argv is not None and "--version" in argv and not _asks_help(argv):
        return parser
    if wanted is not None:
        first = wanted.replace("-", "_")
        names = [first, *(n for n in names if n != first)] if first in names else names
    for name in names:
        importlib.import_module(f"{commands.__name__}.{name}").register(sub)
        if wanted is not None and wanted in sub.choices:
            break
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``matter-ota`` with ``argv`` (default: the process arguments); the exit code."""
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(words).parse_args(words)
    try:
        result: int | None = args.func(args)
    except CliError as exc:
        print(f"matter-ota: error: {one_line(exc.message)}", file=sys.stderr)
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
