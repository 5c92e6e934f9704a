// Drives matter.js's OTA image reader and writer (@matter/protocol) for tests/test_ota_image_matterjs.py.
//
//   node ota_image.cjs MATTERJS_DIR read FILE...      one result per file: {"header": {...}} or {"error": "..."}
//   node ota_image.cjs MATTERJS_DIR extract FILE OUT  verifies while extracting the payload to OUT
//   node ota_image.cjs MATTERJS_DIR write DIR         stdin: JSON lines of image options (payload in hex);
//                                                     writes DIR/<n>.ota, prints one JSON line per image
// MATTERJS_DIR is the npm prefix holding node_modules/@matter/{protocol,general}. Results are
// stdout lines "RESULT <json>"; other lines are matter.js's own logging.
"use strict";

const { createRequire } = require("node:module");
const fs = require("node:fs");
const path = require("node:path");
const readline = require("node:readline");
const { Readable, Writable } = require("node:stream");

const [dir, command, ...args] = process.argv.slice(2);
const load = createRequire(path.join(path.resolve(dir), "package.json"));
const { OtaImageReader, OtaImageWriter } = load("@matter/protocol");
const { StandardCrypto } = load("@matter/general");
const crypto = new StandardCrypto();

// matter.js logs to stdout too: results go out on lines of their own, tagged.
function emit(result) {
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

function fileReader(file) {
    // 64 KiB chunks: the reader must assemble the header and the payload across reads.
    const stream = fs.createReadStream(file, { highWaterMark: 64 * 1024 });
    return Readable.toWeb(stream).getReader();
}

function plain(header) {
    const out = {};
    for (const [key, value] of Object.entries(header)) {
        if (value instanceof Uint8Array) out[key] = Buffer.from(value).toString("hex");
        else if (typeof value === "bigint") out[key] = value.toString();
        else out[key] = value;
    }
    return out;
}

async function read(files) {
    for (const file of files) {
        try {
            const header = await OtaImageReader.file(fileReader(file), crypto, undefined, {
                calculateFullChecksum: false, // check the payload digest of the header, not a DCL checksum
            });
            emit({ header: plain(header) });
        } catch (error) {
            emit({ error: `${error.constructor.name}: ${error.message}` });
        }
    }
}

async function extract(file, out) {
    const sink = fs.createWriteStream(out);
    const closed = new Promise(resolve => sink.on("close", resolve)); // extractPayload closes it
    const header = await OtaImageReader.extractPayload(fileReader(file), Writable.toWeb(sink).getWriter(), crypto);
    await closed;
    emit({ header: plain(header) });
}

async function write(outDir) {
    let n = 0;
    for await (const line of readline.createInterface({ input: process.stdin })) {
        if (!line.trim()) continue;
        const options = JSON.parse(line);
        options.payload = Uint8Array.from(Buffer.from(options.payload, "hex"));
        const result = await OtaImageWriter.create(crypto, options);
        const file = path.join(outDir, `${n++}.ota`);
        fs.writeFileSync(file, result.image);
        emit({ file, fullFileChecksum: result.fullFileChecksum });
    }
}

const commands = { read: () => read(args), extract: () => extract(args[0], args[1]), write: () => write(args[0]) };
commands[command]().catch(error => {
    console.error(`${error.constructor.name}: ${error.message}`);
    process.exit(1);
});
