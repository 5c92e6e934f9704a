"""matter.js's BDX client (npm @matter/protocol, pinned) downloads from our BDX sender.

matter.js runs ``BdxClient.asReceiver`` (what its OTA requestor uses) with a stand-in exchange
that carries the BDX messages over stdio to our sans-IO :class:`TransferTable`; see
tests/matterjs/bdx_receive.cjs. The session layer is ours on both sides of that pipe, so this
checks the BDX codec, negotiation and transfer flow against an implementation we did not write.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from matterjs_support import HARNESS_DIR, matterjs_dir

from matter_ota.bdx.image_source import BytesImage
from matter_ota.bdx.messages import BdxError, DriveMode, Opcode, StatusCode
from matter_ota.bdx.sender import (
    FailReason,
    SenderTransfer,
    State,
    TransferCompleted,
)
from matter_ota.bdx.transfers import TransferTable
from matter_ota.messaging.status import SecureChannelOpcode
from matter_ota.ota_image import build_image

IMAGE = build_image(random.Random(11).randbytes(150_000), vendor_id=0xFFF1, product_id=0x8001,
                    software_version=3, software_version_string="3.0")
DESIGNATOR = "fff1-8001-v3.ota"
STATUS_REPORT = int(SecureChannelOpcode.STATUS_REPORT)


def download(prefix: Path, table: TransferTable, designator: str, modes: str,
             max_block: int | None = None) -> tuple[dict[str, Any], list[SenderTransfer]]:
    """Run the matter.js receiver against ``table``; returns its RESULT and our transfers."""
    node = shutil.which("node")
    assert node is not None
    args = [node, str(HARNESS_DIR / "bdx_receive.cjs"), str(prefix), designator, modes]
    if max_block is not None:
        args.append(str(max_block))
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    transfers: list[SenderTransfer] = []
    result: dict[str, Any] | None = None
    now = 0.0
    try:
        for line in proc.stdout:
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
                break
            if not line.startswith("BDXMSG "):
                continue  # matter.js's own logging
            parts = line.split()
            opcode, payload = int(parts[1]), bytes.fromhex(parts[2] if len(parts) > 2 else "")
            now += 0.001
            if opcode == STATUS_REPORT:
                if transfers:
                    table.fail(transfers[-1], FailReason.PEER_STATUS, "matter.js reported", now)
                continue
            replies: list[tuple[int, bytes]] = []
            try:
                if opcode == Opcode.RECEIVE_INIT:
                    transfer, accept, _ = table.open("matter.js", payload, now)
                    transfers.append(transfer)
                    replies.append((Opcode.RECEIVE_ACCEPT, accept.encode()))
                    replies += [(s.opcode, s.payload) for s in table.start(transfer, now)]
                else:
                    replies += [(s.opcode, s.payload)
                                for s in table.receive(transfers[-1], opcode, payload, now)]
            except BdxError as err:
                replies.append((STATUS_REPORT, err.report.encode()))
            for op, data in replies:
                proc.stdin.write(f"BDXMSG {op} {data.hex()}\n")
            proc.stdin.flush()
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert result is not None, proc.stderr.read() if proc.stderr else "no result"
    return result, transfers


@pytest.fixture(scope="module")
def prefix() -> Path:
    return matterjs_dir()


def _table() -> TransferTable:
    return TransferTable(lambda d: BytesImage(IMAGE) if d == DESIGNATOR else None)


@pytest.mark.parametrize(("modes", "chosen"), [
    ("receiverDrive", DriveMode.RECEIVER_DRIVE),
    ("senderDrive,receiverDrive", DriveMode.RECEIVER_DRIVE),  # matter.js's default offer
    ("senderDrive", DriveMode.SENDER_DRIVE),
])
def test_matterjs_downloads_the_image(prefix: Path, modes: str, chosen: DriveMode) -> None:
    table = _table()
    result, (transfer,) = download(prefix, table, DESIGNATOR, modes)
    assert result == {"ok": True, "size": len(IMAGE),
                      "sha256": hashlib.sha256(IMAGE).hexdigest()}, result
    assert transfer.mode is chosen and transfer.state is State.DONE
    # matter.js asks for its transport's payload less the counter: exactly one datagram.
    assert transfer.block_size == 1194
    events = []
    while (e := table.next_event()) is not None:
        events.append(e)
    assert isinstance(events[-1], TransferCompleted) and events[-1].bytes_sent == len(IMAGE)


# 1024 and receiver drive are what matter.js's OTA requestor asks for over UDP
# (OtaSoftwareUpdateRequestorServer: OTA_BDX_MAX_BLOCK_SIZE_NON_TCP).
@pytest.mark.parametrize("block", [100, 1024])
def test_matterjs_block_sizes(prefix: Path, block: int) -> None:
    result, (transfer,) = download(prefix, _table(), DESIGNATOR, "receiverDrive", block)
    assert result["ok"] and result["sha256"] == hashlib.sha256(IMAGE).hexdigest()
    assert transfer.block_size == block


def test_matterjs_sees_unknown_designator(prefix: Path) -> None:
    result, transfers = download(prefix, _table(), "no-such-image", "receiverDrive")
    assert transfers == [] and result["ok"] is False
    assert result["code"] == StatusCode.FILE_DESIGNATOR_UNKNOWN and result["general"] == 1, result
