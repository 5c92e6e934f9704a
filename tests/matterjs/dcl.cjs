// Drives matter.js's DCL OTA client (@matter/protocol DclOtaUpdateService) against a ledger we
// serve, for tests/test_dcl_matterjs.py: an independent implementation choosing the version for
// a device and downloading + verifying its image.
//
//   node dcl.cjs MATTERJS_DIR BASE_URL     stdin: JSON lines {"vid", "pid", "current", "download"}
//
// One "RESULT <json>" line per query: {"version": N | null, "download": "ok" | "error",
// "error": "..."}. The ledger's CA must be trusted through NODE_EXTRA_CA_CERTS.
"use strict";

const { createRequire } = require("node:module");
const path = require("node:path");
const readline = require("node:readline");

const [dir, baseUrl] = process.argv.slice(2);
const load = createRequire(path.join(path.resolve(dir), "package.json"));
const { DclOtaUpdateService } = load("@matter/protocol");
const { Environment, MockStorageService, Crypto, StandardCrypto } = load("@matter/general");

function emit(result) {
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

async function main() {
    const environment = new Environment("dcl-interop");
    new MockStorageService(environment);
    environment.set(Crypto, new StandardCrypto());
    const service = new DclOtaUpdateService(environment, { productionDclConfig: { url: baseUrl } });
    const lines = readline.createInterface({ input: process.stdin });
    for await (const line of lines) {
        if (!line.trim()) continue;
        const query = JSON.parse(line);
        const result = { version: null };
        try {
            const update = await service.checkForUpdate({
                vendorId: query.vid,
                productId: query.pid,
                currentSoftwareVersion: query.current,
                isProduction: true,
            });
            result.version = update === undefined ? null : update.softwareVersion;
            if (update !== undefined && query.download) {
                try {
                    await service.downloadUpdate(update, true);
                    result.download = "ok";
                } catch (error) {
                    const cause = error.cause ? `: ${error.cause.message ?? error.cause}` : "";
                    result.download = "error";
                    result.error = `${error.message ?? error}${cause}`;
                }
            }
        } catch (error) {
            result.error = String(error.message ?? error);
        }
        emit(result);
    }
    await service.close();
}

main().catch(error => {
    console.error(error);
    process.exit(1);
});
