// matter.js 0.17.9's OTA requestor (@matter/node OtaSoftwareUpdateRequestorServer) as a real
// device, for tests/interop/test_ota_matterjs.py.
//
//   node ota_requestor.cjs MATTERJS_DIR STORAGE_DIR PORT PASSCODE DISCRIMINATOR
//
// A commissionable ServerNode (vendor 0xFFF1, product 0x8001, software version 1) with the OTA
// Requestor cluster on its root endpoint. Once a commissioner has put it on a fabric and sent
// AnnounceOTAProvider, matter.js finds the provider by operational discovery, opens CASE,
// QueryImage, downloads the image over BDX, validates it (header, vendor/product, digest) and
// asks ApplyUpdate; our applyUpdate then prints one line "RESULT <json>" ({"version", "size",
// "sha256"}) and the process exits. The spec's random waits before a query (1 to 600 s after an
// announcement) are compressed to one second by wrapping matter.js's timer factory: only the
// timer named "OTA Request" is shortened, nothing of the protocol is changed.
"use strict";

const { createRequire } = require("node:module");
const nodeCrypto = require("node:crypto");
const path = require("node:path");

const [dir, storage, port, passcode, discriminator] = process.argv.slice(2);
const load = createRequire(path.join(path.resolve(dir), "package.json"));
const main = load("@matter/main");
const { OtaSoftwareUpdateRequestorServer } = load("@matter/main/behaviors");
const { ServerNode, Environment, StorageService, Time, VendorId } = main;

const originalTimer = Time.getTimer;
Time.getTimer = (name, duration, callback) =>
    originalTimer(name, name === "OTA Request" ? Math.min(duration, 1000) : duration, callback);

function emit(result) {
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

class TestRequestor extends OtaSoftwareUpdateRequestorServer {
    async applyUpdate(newSoftwareVersion, fileDesignator) {
        const blob = await fileDesignator.openBlob();
        const bytes = new Uint8Array(await blob.arrayBuffer());
        const sha256 = nodeCrypto.createHash("sha256").update(bytes).digest("hex");
        emit({ version: newSoftwareVersion, size: bytes.length, sha256 });
        setTimeout(() => process.exit(0), 200);
    }
}

async function run() {
    const env = Environment.default;
    env.vars.set("storage.path", storage);
    const node = await ServerNode.create(ServerNode.RootEndpoint.with(TestRequestor), {
        id: "ota-requestor",
        network: { port: Number(port) },
        commissioning: { passcode: Number(passcode), discriminator: Number(discriminator) },
        productDescription: { name: "matter.js OTA requestor", deviceType: 0x0012 },
        basicInformation: {
            vendorName: "matter.js",
            vendorId: VendorId(0xfff1),
            productName: "OTA requestor",
            productId: 0x8001,
            nodeLabel: "ota-requestor",
            softwareVersion: 1,
            softwareVersionString: "1.0",
            hardwareVersion: 1,
            serialNumber: "ota-0001",
        },
        otaSoftwareUpdateRequestor: { canConsent: false, updatePossible: true },
    });
    await node.start();
    process.stdout.write("READY\n");
}

run().catch(error => {
    emit({ error: String(error && error.stack ? error.stack : error) });
    process.exit(1);
});
