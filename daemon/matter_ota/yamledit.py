"""Comment-preserving, atomic, validated edits of a YAML list of mappings (releases.yaml).

PyYAML drops comments on a load/dump round trip, and the operator's YAML is reviewed in git
with comments that explain each release. So the CLI never re-dumps the file: it composes the
node tree (which keeps the character offset of every node), finds the mapping being edited,
and splices new text only where a value changes; a new item is appended after the last one.
Everything else in the file, comments and formatting included, stays byte for byte.

Writing is atomic and checked: the new text goes to a temporary file in the same directory,
is fsynced, validated by the caller's loader (the same loader the daemon uses), and renamed
over the original; the directory is fsynced too. An advisory lock serialises CLI edits, and a
file changed since it was read (by hand, or by another tool) is detected and the edit retried
on the new content or refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class YamlEditError(Exception):
    """The file cannot be edited as asked (wrong shape, missing item, failed validation)."""


class ConcurrentEditError(YamlEditError):
    """The file changed on disk between reading it and writing the edit."""


class _Delete:
    """The value for a key that :func:`set_fields` should remove."""

    def __repr__(self) -> str:
        return "DELETE"


DELETE: Any = _Delete()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A file's text as read, with the digest that detects a later change."""

    path: Path
    text: str
    digest: str

    @property
    def exists(self) -> bool:
        return self.digest != _MISSING


_MISSING = "missing"


def read_snapshot(path: Path) -> Snapshot:
    """The file's current text (empty when it does not exist yet)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Snapshot(path, "", _MISSING)
    except OSError as exc:
        raise YamlEditError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlEditError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    return Snapshot(path, text, hashlib.sha256(data).hexdigest())


# -- rendering values ---------------------------------------------------------------------


def _double_quoted(text: str) -> str:
    """A YAML double-quoted scalar with every non-printable character escaped (YAML 1.1
    supports \\x, \\u and \\U escapes; JSON's surrogate pairs would not round-trip)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() and not 0xD800 <= code <= 0xDFFF and code != 0xFEFF:
            out.append(ch)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


class Quoted(str):
    """A string always written double-quoted (ids like ``FFF1:8001`` that people should
    see as text, whatever a YAML 1.1 reader would make of them)."""

    __slots__ = ()


def render_inline(value: Any, *, in_flow: bool = False) -> str:
    """One value as YAML on a single line (flow style for collections, quoted when needed)."""
    if isinstance(value, Mapping):
        inner = ", ".join(
            f"{render_inline(k, in_flow=True)}: {render_inline(v, in_flow=True)}"
            for k, v in value.items()
        )
        return "{" + inner + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render_inline(v, in_flow=True) for v in value) + "]"
    if isinstance(value, str) and (in_flow or isinstance(value, Quoted)
                                   or not value.isprintable()):
        return _double_quoted(value)
    out = yaml.safe_dump(value, width=1 << 30, allow_unicode=True)
    out = out.removesuffix("\n...\n").rstrip("\n")
    return out if "\n" not in out else _double_quoted(str(value))


def render_block_item(item: Mapping[str, Any], dash_column: int) -> str:
    """A mapping as one block sequence item: ``- k: v`` then aligned ``k: v`` lines."""
    if not item:
        raise YamlEditError("cannot append an empty item")
    pad = " " * dash_column
    lines = []
    for n, (key, value) in enumerate(item.items()):
        lead = f"{pad}- " if n == 0 else f"{pad}  "
        lines.append(f"{lead}{render_inline(key)}: {render_inline(value)}\n")
    return "".join(lines)


# -- locating nodes -----------------------------------------------------------------------


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise YamlEditError(f"the file is not valid YAML{where}; fix it by hand first") from exc


def _end(node: yaml.Node) -> int:
    """Offset just past a node's last character (block collections end at their last child,
    not at the next token, so trailing comments are never inside the span)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        return int(node.end_mark.index)
    if isinstance(node, yaml.MappingNode):
        return max((max(_end(k), _end(v)) for k, v in node.value), default=node.start_mark.index)
    if isinstance(node, yaml.SequenceNode):
        return max((_end(v) for v in node.value), default=node.start_mark.index)
    return int(node.end_mark.index)


def _line_end(text: str, index: int) -> int:
    """Offset just past the newline of the line holding ``index`` (or the end of text)."""
    nl = text.find("\n", index)
    return len(text) if nl < 0 else nl + 1


def _find_list(root: yaml.Node | None, list_key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if root is None:
        return None
    if not isinstance(root, yaml.MappingNode):
        raise YamlEditError("the top level must be a mapping")
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == list_key:
            return key, value
    return None


def _item(text: str, list_key: str, index: int) -> yaml.MappingNode:
    found = _find_list(_compose(text), list_key)
    if found is None or not isinstance(found[1], yaml.SequenceNode):
        raise YamlEditError(f"no {list_key!r} list in the file")
    items = found[1].value
    if not 0 <= index < len(items):
        raise YamlEditError(f"{list_key}[{index}] does not exist")
    node = items[index]
    if not isinstance(node, yaml.MappingNode):
        raise YamlEditError(f"{list_key}[{index}] (line {node.start_mark.line + 1}) "
                            "is not a mapping")
    return node


# -- edits (pure: text in, text out) -------------------------------------------------------


def set_fields(text: str, list_key: str, index: int, changes: Mapping[str, Any]) -> str:
    """Set keys of ``list_key[index]`` to new values (:data:`DELETE` removes one); only
    those values' text changes."""

    node = _item(text, list_key, index)
    # A deleted key that shares the `- ` line is emptied (null) rather than removed.
    first = None if node.flow_style or not node.value else node.value[0][0].value

    def expect(data: Any) -> None:
        item = data[list_key][index]
        for key, value in changes.items():
            if value is not DELETE:
                item[key] = value
            elif key == first and key in item:
                item[key] = None
            else:
                item.pop(key, None)

    return _checked(text, _set_fields(text, list_key, index, changes), expect)


def _set_fields(text: str, list_key: str, index: int, changes: Mapping[str, Any]) -> str:
    node = _item(text, list_key, index)
    if node.flow_style:
        # `- {a: 1, b: 2}`: rewrite the whole flow mapping (it holds no comments).
        current = yaml.safe_load(text[node.start_mark.index:node.end_mark.index])
        current.update(changes)
        current = {k: v for k, v in current.items() if v is not DELETE}
        return text[: node.start_mark.index] + render_inline(current) + text[
            node.end_mark.index:]
    splices: list[tuple[int, int, str]] = []
    missing: dict[str, Any] = {}
    pairs = {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    first_key = node.value[0][0] if node.value else None
    for key, value in changes.items():
        if key not in pairs:
            if value is not DELETE:
                missing[key] = value
            continue
        knode, vnode = pairs[key]
        if value is DELETE:
            line_start = text.rfind("\n", 0, knode.start_mark.index) + 1
            if knode is not first_key and not text[line_start:knode.start_mark.index].strip():
                # The key's own lines go, with a comment on its last line; others stay.
                end = _line_end(text, max(_end(vnode), _end(knode)) - 1)
                splices.append((line_start, end, ""))
                continue
            value = None  # the key shares the `- ` line: keep the line, empty the value
        if isinstance(vnode, yaml.ScalarNode) and vnode.value == "" and vnode.style is None:
            # `key:` with nothing after it: the empty node sits right after the colon.
            colon = text.index(":", _end(knode))
            splices.append((colon + 1, colon + 1, " " + render_inline(value)))
            continue
        splices.append((vnode.start_mark.index, _end(vnode), render_inline(value)))
    if missing:
        indent = " " * node.start_mark.column
        at = _line_end(text, _end(node) - 1 if _end(node) > 0 else 0)
        block = "".join(f"{indent}{render_inline(k)}: {render_inline(v)}\n"
                        for k, v in missing.items())
        if at == len(text) and text and not text.endswith("\n"):
            block = "\n" + block
        splices.append((at, at, block))
    for start, end, new in sorted(splices, key=lambda s: s[0], reverse=True):
        text = text[:start] + new + text[end:]
    return text


def append_item(text: str, list_key: str, item: Mapping[str, Any]) -> str:
    """Add a mapping at the end of the ``list_key`` list, creating the list if needed."""

    def expect(data: Any) -> None:
        data[list_key] = [*(data.get(list_key) or []), dict(item)]

    return _checked(text, _append_item(text, list_key, item), expect)


def _append_item(text: str, list_key: str, item: Mapping[str, Any]) -> str:
    root = _compose(text)
    found = _find_list(root, list_key)
    if found is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        return text + sep + f"{list_key}:\n" + render_block_item(item, 2)
    key, seq = found
    if isinstance(seq, yaml.SequenceNode) and not seq.flow_style and seq.value:
        at = _line_end(text, _end(seq) - 1)
        block = render_block_item(item, seq.start_mark.column)
        if at == len(text) and not text.endswith("\n"):
            block = "\n" + block
        return text[:at] + block + text[at:]
    is_empty_flow = isinstance(seq, yaml.SequenceNode) and not seq.value
    is_null = isinstance(seq, yaml.ScalarNode) and seq.tag.endswith(":null")
    if not (is_empty_flow or is_null):
        raise YamlEditError(
            f"{list_key!r} (line {key.start_mark.line + 1}) must be a list; "
            f"append by hand or make it a block list"
        )
    # `releases: []`, `releases: null` or `releases:` -> a block list below the key's line,
    # which keeps its comment.
    colon = text.index(":", _end(key))
    if is_null and seq.value == "":
        start = end = colon + 1
    else:
        start, end = seq.start_mark.index, seq.end_mark.index
    text = text[:start] + text[end:]
    at = _line_end(text, colon)
    block = render_block_item(item, key.start_mark.column + 2)
    if at == len(text) and not text.endswith("\n"):
        block = "\n" + block
    return text[:at] + block + text[at:]


def _checked(old: str, new: str, expect: Callable[[Any], None]) -> str:
    """``new`` if it means exactly ``old`` with the edit made, else YamlEditError: a layout
    the splicer does not handle is refused, never written wrongly."""
    try:
        data = yaml.safe_load(old)
        data = {} if data is None else data
        expect(data)
        ok = yaml.safe_load(new) == data
    except (yaml.YAMLError, LookupError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise YamlEditError(
            "cannot make this edit without disturbing the file's layout; edit it by hand"
        )
    return new


# -- writing --------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An advisory lock beside the file, so two CLI edits never interleave."""
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise YamlEditError(
            f"cannot edit {path}: {exc.strerror} creating {lock_path.name} in its folder "
            "(run as the user that owns the config)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_validated(
    base: Snapshot, new_text: str, validate: Callable[[Path], object]
) -> Snapshot:
    """Atomically replace ``base.path`` with ``new_text`` if it validates and the file has
    not changed since ``base`` was read. ``validate(tmp_path)`` raises to refuse."""
    with _locked(base.path):
        return _write_locked(base, new_text, validate)


def _write_locked(
    base: Snapshot, new_text: str, validate: Callable[[Path], object]
) -> Snapshot:
    """write_validated without taking the lock (the caller holds it)."""
    path = base.path
    directory = path.parent
    if read_snapshot(path).digest != base.digest:
        raise ConcurrentEditError(f"{path} changed while it was being edited")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise YamlEditError(f"cannot write beside {path}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(new_text)
            f.flush()
            os.fsync(f.fileno())
        if base.exists:
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        validate(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise YamlEditError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return read_snapshot(path)


def edit(
    path: Path,
    transform: Callable[[Snapshot], str],
    validate: Callable[[Path], object],
    *,
    attempts: int = 3,
) -> Snapshot:
    """Read, transform, validate, write; on a concurrent change re-read and redo the edit
    (the transform decides again on the new content), up to ``attempts`` times."""
    with _locked(path):  # other CLI edits wait; only a hand edit can race with this one
        for _ in range(attempts):
            base = read_snapshot(path)
            new_text = transform(base)
            try:
                return _write_locked(base, new_text, validate)
            except ConcurrentEditError:
                continue
    raise ConcurrentEditError(
        f"{path} kept changing while being edited ({attempts} attempts); try again"
    )
