"""Reading a YAML node tree with file:line:column in every error.

The config is composed (``yaml.compose``), not ``safe_load``-ed, so every value keeps the
position it came from. Readers here check one value each and raise :class:`ConfigError`
naming the file, the line and column, what is wrong and what to do.

Scalars with a format of their own (hex ids, ``VID:PID``, ``HH:MM``, durations) are parsed
from the text as written, never from YAML 1.1's guess: ``1:30`` would otherwise be the
sexagesimal integer 90.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import yaml

from matter_ota.policy.model import IntRange, Product

NULL_TAG = "tag:yaml.org,2002:null"
BOOL_TAG = "tag:yaml.org,2002:bool"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"


class ConfigError(Exception):
    """An invalid config file: where (file:line:column), what is wrong and what to do."""

    def __init__(self, path: Path | str, line: int | None, column: int | None,
                 message: str, hint: str = "") -> None:
        self.path = Path(path)
        self.line = line
        self.column = column
        self.message = message
        self.hint = hint
        super().__init__(str(self))

    @property
    def location(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text}; {self.hint}" if self.hint else text


@dataclass
class Doc:
    """One YAML file: its path (for messages) and root node (``None`` when empty)."""

    path: Path
    root: yaml.Node | None

    @classmethod
    def parse(cls, text: str, path: Path) -> Doc:
        """``text`` composed into YAML nodes; ConfigError with the line on a syntax error."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "not valid YAML"
            raise ConfigError(
                path, mark.line + 1 if mark else None, mark.column + 1 if mark else None,
                f"YAML syntax: {problem}", "fix the syntax (indentation, quotes, colons)",
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(path, None, None, f"YAML: {exc}", "fix the file") from None
        except RecursionError:  # PyYAML composes recursively: a few thousand levels exhaust it
            raise ConfigError(path, None, None, "YAML nested too deeply",
                              "a config is a few levels deep; fix the file") from None
        return cls(path, root)

    @classmethod
    def load(cls, path: Path) -> Doc:
        """:meth:`parse` of the file at ``path``; ConfigError when it cannot be read."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                path, None, None, "file not found",
                "create it (see config/ in the source tree) or pass --config",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(path, None, None, f"cannot read: {exc}",
                              "check permissions and encoding (UTF-8)") from None
        return cls.parse(text, path)

    def error(self, node: yaml.Node | None, message: str, hint: str) -> NoReturn:
        """Raise ConfigError at ``node``'s line and column, with what to do."""
        if node is None:
            raise ConfigError(self.path, None, None, message, hint)
        mark = node.start_mark
        raise ConfigError(self.path, mark.line + 1, mark.column + 1, message, hint)

    # --- containers -------------------------------------------------------------------------

    def mapping(self, node: yaml.Node | None, what: str, allowed: tuple[str, ...],
                required: tuple[str, ...] = ()) -> dict[str, yaml.Node]:
        """The entries of a mapping, every key known, every required key present."""
        if node is None or is_null(node):
            entries: dict[str, yaml.Node] = {}
        elif not isinstance(node, yaml.MappingNode):
            self.error(node, f"{what} must be a mapping (key: value lines)",
                       "indent its keys under it")
        else:
            entries = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == NULL_TAG:
                    self.error(key_node, f"{what}: keys must be plain names",
                               "write key: value with a plain word as the key")
                key = str(key_node.value)
                if key in entries:
                    self.error(key_node, f"{what}: duplicate key {key!r}",
                               "keep one of the two")
                if key not in allowed:
                    close = difflib.get_close_matches(key, allowed, n=1)
                    hint = (f"did you mean {close[0]!r}?" if close
                            else "known keys: " + ", ".join(allowed))
                    self.error(key_node, f"unknown key {key!r} in {what}", hint)
                entries[key] = value_node
        missing = [k for k in required if k not in entries]
        if missing:
            self.error(node, f"{what} lacks {', '.join(repr(k) for k in missing)}",
                       f"add {missing[0]}: ...")
        return entries

    def sequence(self, node: yaml.Node | None, what: str) -> list[yaml.Node]:
        """The items of a list; a single scalar counts as a list of one; null as empty."""
        if node is None or is_null(node):
            return []
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if isinstance(node, yaml.ScalarNode):
            return [node]
        self.error(node, f"{what} must be a list", "write [a, b] or one '- item' per line")

    def named_mappings(self, node: yaml.Node | None, what: str
                       ) -> Iterator[tuple[yaml.ScalarNode, yaml.Node]]:
        """(name node, value node) of a mapping whose keys are names (e.g. channels)."""
        if node is None or is_null(node):
            return
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{what} must be a mapping of name: settings",
                       "write one 'name:' per line with its settings indented below")
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(key_node, f"{what}: names must be plain scalars",
                           "write a plain name before the colon")
            if key_node.value in seen:
                self.error(key_node, f"{what}: {key_node.value!r} is defined twice",
                           "merge the two")
            seen.add(key_node.value)
            yield key_node, value_node

    # --- scalars ----------------------------------------------------------------------------

    def scalar(self, node: yaml.Node, what: str) -> yaml.ScalarNode:
        """``node`` if it is a single value, else an error naming ``what``."""
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, f"{what} must be a single value, not a list or mapping",
                       "write one value after the colon")
        return node

    def text(self, node: yaml.Node, what: str) -> str:
        """The value as written (quotes removed); an error for null."""
        scalar = self.scalar(node, what)
        if scalar.tag == NULL_TAG and scalar.style is None:
            self.error(node, f"{what} is empty", "give it a value or remove the key")
        return str(scalar.value)

    def string(self, node: yaml.Node, what: str, *, max_len: int | None = None,
               pattern: str | None = None, hint: str = "") -> str:
        """A string, at most ``max_len`` characters and matching ``pattern`` when given."""
        value = self.text(node, what)
        if max_len is not None and len(value) > max_len:
            self.error(node, f"{what} is {len(value)} characters, at most {max_len} allowed",
                       "shorten it")
        if pattern is not None and not re.fullmatch(pattern, value):
            self.error(node, f"{what} {value!r} is not valid", hint)
        return value

    def integer(self, node: yaml.Node, what: str, low: int | None = None,
                high: int | None = None) -> int:
        """An integer (decimal, 0x, 0o, 0b; ``_`` separators), within [low, high] when given."""
        scalar = self.scalar(node, what)
        raw = str(scalar.value).replace("_", "").strip()
        value: int | None = None
        # 40 characters hold any 64-bit id in any base; longer is a mistake (and int() of
        # thousands of digits is refused by Python itself).
        if len(raw) <= 40 and _INTEGER.fullmatch(raw) and scalar.tag != NULL_TAG:
            body = raw.lstrip("+-")[:2].lower()
            value = int(raw, 0) if body in ("0x", "0o", "0b") else int(raw, 10)
        if value is None:
            range_text = "" if low is None or high is None else f" from {low} to {high}"
            self.error(node, f"{what} must be an integer{range_text}, not {scalar.value!r}",
                       "write a number (0x.. for hex)")
        if (low is not None and value < low) or (high is not None and value > high):
            self.error(node, f"{what} must be from {low} to {high}, not {value}",
                       "pick a value in range")
        return value

    def hex_int(self, node: yaml.Node, what: str, digits: int) -> int:
        """An id written in hex (``2906C908D115D362`` or ``0x...``), up to ``digits`` digits."""
        raw = self.text(node, what).strip()
        body = raw[2:] if raw[:2].lower() == "0x" else raw
        if len(body) > digits or not re.fullmatch(r"[0-9a-fA-F]+", body):
            self.error(node, f"{what} {raw!r} is not a hex number of up to {digits} digits",
                       "quote it and write hex digits, e.g. \"2906C908D115D362\"")
        return int(body, 16)

    def boolean(self, node: yaml.Node, what: str) -> bool:
        """An unquoted YAML boolean."""
        scalar = self.scalar(node, what)
        if scalar.tag != BOOL_TAG or scalar.style is not None:
            self.error(node, f"{what} must be true or false, not {scalar.value!r}",
                       "write true or false, unquoted")
        return str(scalar.value).lower() in ("true", "yes", "on", "y")

    def number(self, node: yaml.Node, what: str, low: float, high: float) -> float:
        """An int or float within [low, high]."""
        scalar = self.scalar(node, what)
        try:
            value = float(str(scalar.value).replace("_", ""))
        except ValueError:
            value = float("nan")
        if scalar.tag not in (INT_TAG, FLOAT_TAG) or not low <= value <= high:
            self.error(node, f"{what} must be a number from {low:g} to {high:g}, "
                       f"not {scalar.value!r}", "write a plain number in that range")
        return value

    def duration(self, node: yaml.Node, what: str, low: float = 0.0,
                 high: float = 366 * 86400.0) -> float:
        """Seconds, written ``90``, ``90s``, ``15m``, ``6h``, ``2d`` or ``1h30m``."""
        raw = self.text(node, what).strip()
        seconds = parse_duration(raw)
        if seconds is None:
            self.error(node, f"{what} {raw!r} is not a duration",
                       "write seconds (90) or with a unit: 90s, 15m, 6h, 2d, 1h30m")
        if not low <= seconds <= high:
            self.error(node, f"{what} must be from {format_duration(low)} to "
                       f"{format_duration(high)}, not {format_duration(seconds)}",
                       "pick a duration in range")
        return seconds

    def size(self, node: yaml.Node, what: str) -> int:
        """Bytes, written ``1048576``, ``512MiB``, ``2GiB``, ``100MB``."""
        raw = self.text(node, what).strip()
        match = re.fullmatch(r"([0-9]{1,20})\s*([KMGT]i?B|B)?", raw, flags=re.IGNORECASE)
        if match is None:
            self.error(node, f"{what} {raw!r} is not a size", "write bytes or 512MiB, 2GiB")
        unit = (match.group(2) or "B").upper()
        factor = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
                  "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}[unit]
        return int(match.group(1)) * factor

    def timestamp(self, node: yaml.Node, what: str) -> datetime:
        """ISO 8601; without a zone it is UTC. Returned timezone-aware, in UTC."""
        raw = self.text(node, what).strip()
        try:
            value = datetime.fromisoformat(raw.replace(" ", "T", 1) if "T" not in raw else raw)
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return value.astimezone(UTC)
        except (ValueError, OverflowError):
            self.error(node, f"{what} {raw!r} is not an ISO 8601 time",
                       "write e.g. 2026-11-29T18:00:00Z")

    def resolve_path(self, node: yaml.Node, what: str) -> Path:
        """A path; relative ones resolve against the directory of this file."""
        text = self.text(node, what)
        if "\x00" in text:
            self.error(node, f"{what} contains a NUL character", "write a plain path")
        try:
            value = Path(text).expanduser()
        except RuntimeError:  # ~user of a user that does not exist
            self.error(node, f"{what} {text!r}: cannot expand '~' (no such user or no home)",
                       "write the full path")
        return value if value.is_absolute() else Path(os.path.normpath(self.path.parent / value))

    def product(self, node: yaml.Node, what: str) -> Product:
        """``VID:PID`` in hex, read as written (``"FFF1:8001"``)."""
        text = self.text(node, what)
        try:
            return Product.parse(text)
        except ValueError as exc:
            self.error(node, f"{what}: {exc}", 'quote it: "FFF1:8001"')

    def int_ranges(self, node: yaml.Node | None, what: str) -> tuple[IntRange, ...]:
        """A list of 16-bit versions or inclusive ranges: ``[1, "3-5"]``."""
        ranges = []
        for item in self.sequence(node, what):
            text = self.text(item, f"{what} entry").strip()
            match = re.fullmatch(r"(\d{1,6})\s*(?:-\s*(\d{1,6}))?", text)
            if match is None:
                self.error(item, f"{what} entry {text!r} is not a version or range",
                           "write 3 or \"3-7\"")
            low = int(match.group(1))
            high = int(match.group(2)) if match.group(2) else low
            if high < low or high > 0xFFFF:
                self.error(item, f"{what} entry {text!r}: ranges go low-high within 0..65535",
                           'write the lower bound first, e.g. "3-7"')
            ranges.append(IntRange(low, high))
        return tuple(ranges)


_INTEGER = re.compile(r"[+-]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|[0-9]+)")


def is_null(node: yaml.Node) -> bool:
    """True for an empty value or an unquoted ``null`` / ``~``."""
    return isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG and node.style is None


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d|w)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float | None:
    """Seconds from ``90``, ``1.5``, ``90s``, ``15m``, ``6h``, ``2d``, ``1h30m``; else None."""
    text = text.strip().lower()
    if len(text) > 40:
        return None
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT[match.group(2)]
        pos = match.end()
    return total if pos == len(text) and pos > 0 else None


def format_duration(seconds: float) -> str:
    """The shortest exact writing: ``90s``, ``15m``, ``6h``, ``2d``, ``1h30m``."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest = int(seconds)
    if rest == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)
