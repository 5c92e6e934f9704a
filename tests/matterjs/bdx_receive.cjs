// matter.js's BDX client (@matter/protocol BdxClient.asReceiver) downloading a file designator
// from our sender, for tests/test_bdx_matterjs.py.
//
//   node bdx_receive.cjs MATTERJS_DIR DESIGNATOR MODES [MAX_BLOCK]
//
// MODES: comma-separated preferred drive modes ("senderDrive,receiverDrive"). The BDX messages
// cross a stand-in for a matter.js MessageExchange over stdio: every message matter.js sends
// is a stdout line "BDXMSG <opcode> <hex payload>", every line "BDXMSG <opcode> <hex>" on stdin
// is a message from the sender (0x40 = StatusReport). The session layer (CASE, MRP) is ours
// and tested elsewhere; this exercises matter.js's BDX codec and transfer flow against ours.
// At the end one line "RESULT <json>": {"ok", "size", "sha256", "error", "code"}.
"use strict";

const { createRequire } = require("node:module");
const nodeCrypto = require("node:crypto");
const path = require("node:path");
const readline = require("node:readline");

const [dir, designator, modes, maxBlock] = process.argv.slice(2);
const load = createRequire(path.join(path.resolve(dir), "package.json"));
const { BdxClient, BdxMessenger, FileDesignator } = load("@matter/protocol");

function emit(result) {
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

// Messages from our sender, in order, handed to matter.js's nextMessage().
const inbox = [];
const waiting = [];
readline.createInterface({ input: process.stdin }).on("line", line => {
    const [tag, op, hex = ""] = line.trim().split(" ");
    if (tag !== "BDXMSG") return;
    const message = {
        payloadHeader: { messageType: Number(op), protocolId: Number(op) === 0x40 ? 0 : 2 },
        payload: new Uint8Array(Buffer.from(hex, "hex")),
    };
    const waiter = waiting.shift();
    if (waiter) waiter(message);
    else inbox.push(message);
});

const closedHandlers = [];
const exchange = {
    id: 1,
    session: { isSecure: true },
    channel: { isReliable: true },
    // Our MAX_SECURE_PAYLOAD: the largest payload that fits one datagram on a secure session.
    maxPayloadSize: 1198,
    closed: { once: fn => closedHandlers.push(fn), on: fn => closedHandlers.push(fn) },
    async send(type, payload) {
        process.stdout.write(`BDXMSG ${type} ${Buffer.from(payload).toString("hex")}\n`);
    },
    nextMessage() {
        const ready = inbox.shift();
        if (ready) return Promise.resolve(ready);
        return new Promise(resolve => waiting.push(resolve));
    },
    async close() {
        for (const fn of closedHandlers.splice(0)) await fn();
    },
};

class HashingDesignator extends FileDesignator {
    constructor(name) {
        super(name);
        this.hash = nodeCrypto.createHash("sha256");
        this.size = 0;
    }
    async writeFromStream(stream) {
        for await (const chunk of stream) {
            this.hash.update(chunk);
            this.size += chunk.byteLength;
        }
    }
}

async function main() {
    const fileDesignator = new HashingDesignator(designator);
    const options = { fileDesignator, preferredDriverModes: modes.split(",") };
    if (maxBlock) options.maxBlockSize = Number(maxBlock);
    const client = BdxClient.asReceiver(new BdxMessenger(exchange), options);
    try {
        await client.processTransfer();
        emit({ ok: true, size: fileDesignator.size, sha256: fileDesignator.hash.digest("hex") });
    } catch (error) {
        emit({ ok: false, error: String(error), code: error.code ?? error.protocolStatusCode ?? null,
                general: error.generalStatusCode ?? null });
    }
    process.exit(0);
}

main();
