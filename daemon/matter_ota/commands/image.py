"""`matter-ota image create|show|verify|extract`: build and check Matter OTA image files."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from matter_ota import ota_image
from matter_ota.cli import EXIT_FAILURE, CliError
from matter_ota.ota_image import DigestAlgorithm, OtaImageError, OtaImageHeader

T = TypeVar("T")


def _int(text: str) -> int:
    """Decimal or 0x-prefixed hexadecimal, as vendors write VIDs and PIDs."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _digest(text: str) -> DigestAlgorithm:
    try:
        return ota_image.digest_by_name(text)
    except OtaImageError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("image", help="build and check Matter OTA image files (spec 11.21)")
    actions = p.add_subparsers(dest="image_command", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="wrap a firmware payload into an OTA image")
    create.add_argument("--vendor-id", type=_int, required=True, metavar="V")
    create.add_argument("--product-id", type=_int, required=True, metavar="P")
    create.add_argument("--version", type=_int, required=True, metavar="N", help="SoftwareVersion")
    create.add_argument(
        "--version-string", required=True, metavar="S", help="SoftwareVersionString (1-64 bytes)"
    )
    create.add_argument("--min-version", type=_int, metavar="N", help="MinApplicableVersion")
    create.add_argument("--max-version", type=_int, metavar="N", help="MaxApplicableVersion")
    create.add_argument("--release-notes-url", metavar="U", help="https:// URL, at most 256 bytes")
    names = ", ".join(a.cli_name for a in ota_image.DIGESTS.values())
    create.add_argument(
        "--digest",
        type=_digest,
        default=ota_image.DEFAULT_DIGEST,
        metavar="NAME",
        help=f"payload digest (default sha256; one of {names}; IANA spellings work too)",
    )
    create.add_argument("payload", type=Path, metavar="PAYLOAD")
    create.add_argument("output", type=Path, metavar="OUTPUT")
    create.set_defaults(func=run_create)

    show = actions.add_parser("show", help="print an image's header (reads the header only)")
    show.add_argument("file", type=Path, metavar="FILE")
    show.add_argument("--json", action="store_true", help="one JSON object for scripts")
    show.set_defaults(func=run_show)

    verify = actions.add_parser("verify", help="check an image completely, digest included")
    verify.add_argument("file", type=Path, metavar="FILE")
    verify.add_argument("--vendor-id", type=_int, metavar="V", help="refuse another vendor ID")
    verify.add_argument("--product-id", type=_int, metavar="P", help="refuse another product ID")
    verify.add_argument("--version", type=_int, metavar="N", help="refuse another version")
    verify.set_defaults(func=run_verify)

    extract = actions.add_parser("extract", help="verify an image, then write its payload")
    extract.add_argument("file", type=Path, metavar="FILE")
    extract.add_argument("output", type=Path, metavar="OUTPUT")
    extract.set_defaults(func=run_extract)


def _guarded(path: Path | None, action: Callable[[], T]) -> T:
    """Run ``action``; image and OS errors become one-line CLI errors naming ``path``."""
    try:
        return action()
    except OtaImageError as exc:
        raise CliError(exc.message if path is None else f"{path}: {exc.message}") from None
    except OSError as exc:
        where = exc.filename if exc.filename is not None else path
        raise CliError(f"{where}: {exc.strerror or exc}", EXIT_FAILURE) from None


@contextmanager
def _progress(label: str) -> Iterator[ota_image.Progress | None]:
    """A progress line on stderr when it is a terminal (redrawn at most 10 times a second)."""
    if not sys.stderr.isatty():
        yield None
        return
    last = 0.0

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < 0.1 and done < total:
            return
        last = now
        percent = 100 * done // total if total else 100
        sys.stderr.write(f"\r{label}: {percent:3d}% ({done >> 20}/{total >> 20} MiB)")
        sys.stderr.flush()

    try:
        yield report
    finally:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


def _summary(header: OtaImageHeader) -> str:
    return (
        f"vendor_id=0x{header.vendor_id:04X} product_id=0x{header.product_id:04X} "
        f"version={header.software_version} ({header.software_version_string}) "
        f"payload={header.payload_size} bytes {header.digest_algorithm.iana_name}="
        f"{header.digest.hex()}"
    )


def run_create(args: argparse.Namespace) -> int:
    with _progress(f"creating {args.output}") as progress:
        header = _guarded(
            None,  # the payload's content cannot be wrong; a refusal is about the options
            lambda: ota_image.create_image(
                args.payload,
                args.output,
                vendor_id=args.vendor_id,
                product_id=args.product_id,
                software_version=args.version,
                software_version_string=args.version_string,
                digest=args.digest,
                min_applicable_version=args.min_version,
                max_applicable_version=args.max_version,
                release_notes_url=args.release_notes_url,
                progress=progress,
            ),
        )
    print(f"created {args.output}: {_summary(header)}")
    return 0


def _show_lines(header: OtaImageHeader) -> Iterator[tuple[str, str]]:
    def optional(value: object) -> str:
        return "-" if value is None else str(value)

    yield "vendor id", f"0x{header.vendor_id:04X} ({header.vendor_id})"
    yield "product id", f"0x{header.product_id:04X} ({header.product_id})"
    yield "software version", f"{header.software_version} (0x{header.software_version:08X})"
    yield "version string", header.software_version_string
    yield "payload size", f"{header.payload_size} bytes"
    yield "min applicable version", optional(header.min_applicable_version)
    yield "max applicable version", optional(header.max_applicable_version)
    yield "release notes url", optional(header.release_notes_url)
    algorithm = header.digest_algorithm
    yield "digest type", f"{header.digest_type} ({algorithm.iana_name})"
    yield "digest", header.digest.hex()
    yield (
        "header size",
        f"{header.header_size} bytes (TLV; payload at byte {header.payload_offset})",
    )
    yield "total size", f"{header.total_size} bytes"


def run_show(args: argparse.Namespace) -> int:
    header = _guarded(args.file, lambda: ota_image.read_header(args.file))
    if args.json:
        print(json.dumps(header.to_json()))
        return 0
    lines = list(_show_lines(header))
    width = max(len(key) for key, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    with _progress(f"verifying {args.file}") as progress:
        header = _guarded(
            args.file,
            lambda: ota_image.verify_image(
                args.file,
                vendor_id=args.vendor_id,
                product_id=args.product_id,
                software_version=args.version,
                progress=progress,
            ),
        )
    print(f"{args.file}: valid: {_summary(header)}")
    return 0


def run_extract(args: argparse.Namespace) -> int:
    with _progress(f"extracting {args.file}") as progress:
        header = _guarded(
            args.file, lambda: ota_image.extract_payload(args.file, args.output, progress=progress)
        )
    print(
        f"extracted {header.payload_size}-byte payload of {args.file} to {args.output} "
        f"({header.digest_algorithm.iana_name} verified)"
    )
    return 0
