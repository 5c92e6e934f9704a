"""Declarative TLV structure schemas: a dataclass per message, fields with tags and types."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Self

from matter_ota.tlv.codec import Float32, Tag, TLVError, TLVList, decode, encode, uint


class FieldType:
    """How one schema field maps between its Python value and its TLV value."""

    name = "value"

    def to_value(self, v: Any, where: str) -> Any:
        """The TLV value of Python value ``v``; TLVError naming ``where`` when it does not fit."""
        return v

    def from_value(self, v: Any, where: str) -> Any:
        """The Python value of decoded TLV value ``v``; TLVError naming ``where`` if it does not
        fit."""
        return v


class _Int(FieldType):
    def __init__(self, bits: int, signed: bool) -> None:
        self.signed = signed
        self.name = f"{'I' if signed else 'U'}{bits}"
        if signed:
            self.lo, self.hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        else:
            self.lo, self.hi = 0, (1 << bits) - 1

    def _check(self, v: Any, where: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TLVError(f"{where}: expected integer, got {type(v).__name__}")
        if not self.lo <= v <= self.hi:
            raise TLVError(f"{where}: {int(v)} out of range for {self.name}")
        return int(v)

    def to_value(self, v: Any, where: str) -> Any:
        n = self._check(v, where)
        return n if self.signed else uint(n)

    def from_value(self, v: Any, where: str) -> Any:
        return self._check(v, where)


U8, U16, U32, U64 = (_Int(b, False) for b in (8, 16, 32, 64))
I8, I16, I32, I64 = (_Int(b, True) for b in (8, 16, 32, 64))


class _Bool(FieldType):
    name = "bool"

    def from_value(self, v: Any, where: str) -> Any:
        if not isinstance(v, bool):
            raise TLVError(f"{where}: expected boolean, got {type(v).__name__}")
        return v

    to_value = from_value


Bool = _Bool()


class _Sized(FieldType):
    py: type = object

    def __init__(self, *, min_len: int = 0, max_len: int | None = None) -> None:
        self.min_len = min_len
        self.max_len = max_len

    def from_value(self, v: Any, where: str) -> Any:
        if isinstance(v, str) and self.py is str:
            n = len(v.encode("utf-8"))
        elif isinstance(v, bytes) and self.py is bytes:
            n = len(v)
        else:
            raise TLVError(f"{where}: expected {self.name}, got {type(v).__name__}")
        if n < self.min_len or (self.max_len is not None and n > self.max_len):
            bound = f"{self.min_len}..{self.max_len if self.max_len is not None else ''}"
            raise TLVError(f"{where}: length {n} outside {bound}")
        return v

    to_value = from_value


class Str(_Sized):
    """UTF-8 string field; lengths count encoded octets."""

    py = str
    name = "string"


class Bytes(_Sized):
    """Octet string field."""

    py = bytes
    name = "octet string"


class _Float(FieldType):
    def __init__(self, single: bool) -> None:
        self.single = single
        self.name = "float" if single else "double"

    def from_value(self, v: Any, where: str) -> Any:
        if not isinstance(v, float):
            raise TLVError(f"{where}: expected {self.name}, got {type(v).__name__}")
        return float(v)

    def to_value(self, v: Any, where: str) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TLVError(f"{where}: expected {self.name}, got {type(v).__name__}")
        if self.single:
            if math.isfinite(v) and abs(v) > 3.4028234663852886e38:
                raise TLVError(f"{where}: {v!r} does not fit a single-precision float")
            return Float32(v)
        return float(v)


Float32Type = _Float(True)
Double = _Float(False)
AnyType = FieldType()


class ArrayOf(FieldType):
    """An array whose elements all have one field type."""

    def __init__(
        self, inner: FieldType | type[Struct] | type[Float32], *, max_items: int | None = None
    ) -> None:
        self.inner = _as_field_type(inner)
        self.max_items = max_items
        self.name = f"array of {self.inner.name}"

    def _check(self, v: Any, where: str) -> list[Any]:
        if not isinstance(v, list | tuple):
            raise TLVError(f"{where}: expected array, got {type(v).__name__}")
        if self.max_items is not None and len(v) > self.max_items:
            raise TLVError(f"{where}: {len(v)} items, at most {self.max_items} allowed")
        return list(v)

    def to_value(self, v: Any, where: str) -> Any:
        items = self._check(v, where)
        return [self.inner.to_value(x, f"{where}[{i}]") for i, x in enumerate(items)]

    def from_value(self, v: Any, where: str) -> Any:
        return [
            self.inner.from_value(x, f"{where}[{i}]") for i, x in enumerate(self._check(v, where))
        ]


class _StructType(FieldType):
    def __init__(self, cls: type[Struct]) -> None:
        self.cls = cls
        self.name = cls.__name__

    def to_value(self, v: Any, where: str) -> Any:
        if not isinstance(v, self.cls):
            raise TLVError(f"{where}: expected {self.name}, got {type(v).__name__}")
        return v.to_value()

    def from_value(self, v: Any, where: str) -> Any:
        return self.cls.from_value(v, where)


def _as_field_type(t: FieldType | type[Struct] | type[Float32]) -> FieldType:
    if isinstance(t, FieldType):
        return t
    if t is Float32:
        return Float32Type
    if isinstance(t, type) and issubclass(t, Struct):
        return _StructType(t)
    raise TypeError(f"not a TLV field type: {t!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class _FieldSpec:
    tag: Tag
    type: FieldType
    optional: bool
    nullable: bool


def field(
    tag: Tag,
    type: FieldType | type[Struct] | type[Float32],
    *,
    optional: bool = False,
    nullable: bool = False,
    default: Any = dataclasses.MISSING,
) -> Any:
    """Declare a schema field: its TLV tag, field type, and whether it may be absent / null."""
    spec = _FieldSpec(tag, _as_field_type(type), optional, nullable)
    if default is dataclasses.MISSING and optional:
        default = None
    return dataclasses.field(default=default, metadata={"tlv": spec})


class Struct:
    """Base of declarative TLV structures; subclasses are ``@dataclass(kw_only=True)``.

    Unknown context tags are ignored on decode (the spec's forward-compatibility rule);
    missing mandatory fields, wrong types and out-of-range values raise :class:`TLVError`.
    """

    _tlv_list: ClassVar[bool] = False

    @classmethod
    def _fields(cls) -> tuple[tuple[str, _FieldSpec], ...]:
        cached: tuple[tuple[str, _FieldSpec], ...] | None = cls.__dict__.get("_tlv_fields_cache")
        if cached is None:
            if not dataclasses.is_dataclass(cls):
                raise TypeError(f"{cls.__name__} must be a @dataclass(kw_only=True)")
            cached = tuple(
                (f.name, f.metadata["tlv"]) for f in dataclasses.fields(cls) if "tlv" in f.metadata
            )
            type.__setattr__(cls, "_tlv_fields_cache", cached)
        return cached

    def to_value(self) -> Any:
        """This structure as a TLV value (``dict``, or :class:`TLVList` for list structs)."""
        items: list[tuple[Tag, Any]] = []
        name = type(self).__name__
        for attr, spec in self._fields():
            v = getattr(self, attr)
            if v is None:
                if spec.nullable and not spec.optional:
                    items.append((spec.tag, None))
                elif not spec.optional:
                    raise TLVError(f"{name}.{attr}: mandatory field is missing")
                continue
            items.append((spec.tag, spec.type.to_value(v, f"{name}.{attr}")))
        if self._tlv_list:
            return TLVList(items)
        return dict(items)

    def encode(self, tag: Tag | None = None) -> bytes:
        """Encode as one TLV element."""
        return encode(self.to_value(), tag)

    @classmethod
    def from_value(cls, value: Any, where: str | None = None) -> Self:
        """Build from a decoded TLV value, checking every field."""
        where = where or cls.__name__
        members: dict[Any, Any]
        if isinstance(value, TLVList):
            members = {}
            for t, v in value:
                if t is not None and t in members:
                    raise TLVError(f"{where}: duplicate tag {t!r}")
                members[t] = v
        elif isinstance(value, dict):
            members = value
        else:
            raise TLVError(f"{where}: expected structure, got {type(value).__name__}")
        kwargs: dict[str, Any] = {}
        for attr, spec in cls._fields():
            here = f"{where}.{attr}"
            if spec.tag not in members:
                if not spec.optional:
                    raise TLVError(f"{here}: missing mandatory field (tag {spec.tag!r})")
                continue
            v = members[spec.tag]
            if v is None:
                if not spec.nullable:
                    raise TLVError(f"{here}: null is not allowed")
                kwargs[attr] = None
            else:
                kwargs[attr] = spec.type.from_value(v, here)
        return cls(**kwargs)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Self:
        """Decode one TLV element and check it against this schema."""
        return cls.from_value(decode(data))


class ListStruct(Struct):
    """A schema encoded as a TLV *list* with context tags (e.g. IM paths)."""

    _tlv_list = True
