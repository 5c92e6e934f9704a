// Encodes and decodes Interaction Model messages with matter.js's schemas (@matter/types) for
// tests/test_im_matterjs.py: an independent check of our IM message layouts.
//
//   node im_messages.cjs MATTERJS_DIR
//     stdin: JSON lines {"op": "decode", "kind": K, "hex": H} or {"op": "encode", "kind": K,
//     "value": V}; stdout: one "RESULT <json>" line each, {"value": ...} / {"hex": ...} or
//     {"error": "..."}. K names a matter.js message schema without its Tlv prefix.
"use strict";

const { createRequire } = require("node:module");
const path = require("node:path");
const readline = require("node:readline");

const [dir] = process.argv.slice(2);
const load = createRequire(path.join(path.resolve(dir), "package.json"));
const types = load("@matter/types");

function emit(result) {
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

function plain(value) {
    if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
    if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
    if (Array.isArray(value)) return value.map(plain);
    if (value !== null && typeof value === "object") {
        const out = {};
        for (const [key, v] of Object.entries(value)) if (v !== undefined) out[key] = plain(v);
        return out;
    }
    return value;
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", line => {
    if (!line.trim()) return;
    const request = JSON.parse(line);
    const schema = types[`Tlv${request.kind}`];
    try {
        if (schema === undefined) throw new Error(`no schema Tlv${request.kind}`);
        if (request.op === "decode") {
            emit({ value: plain(schema.decode(Buffer.from(request.hex, "hex"))) });
        } else {
            emit({ hex: Buffer.from(schema.encode(request.value)).toString("hex") });
        }
    } catch (error) {
        emit({ error: String(error && error.message ? error.message : error) });
    }
});
