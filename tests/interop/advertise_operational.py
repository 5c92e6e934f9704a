"""Advertise one operational Matter node (``_matter._tcp``, spec 4.3.1) until told to stop.

Run by the interop tests inside their network namespace, with python-zeroconf, until the
runtime's own mDNS lands: ``--instance <CFID>-<NODEID> --address A --port P --stop-file F``.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

from zeroconf import IPVersion, ServiceInfo, Zeroconf


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instance", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    family = socket.AF_INET6 if ":" in args.address else socket.AF_INET
    compressed_fabric = args.instance.split("-")[0]
    info = ServiceInfo(
        "_matter._tcp.local.",
        f"{args.instance}._matter._tcp.local.",
        addresses=[socket.inet_pton(family, args.address)],
        port=args.port,
        properties={"SII": "500", "SAI": "300", "SAT": "4000"},
        server="ota-provider-test.local.",
    )
    zc = Zeroconf(ip_version=IPVersion.All)
    zc.register_service(info)
    # commissioners browse by the compressed-fabric subtype (4.3.1.1)
    sub = ServiceInfo(
        f"_I{compressed_fabric}._sub._matter._tcp.local.",
        f"{args.instance}._matter._tcp.local.",
        addresses=[socket.inet_pton(family, args.address)],
        port=args.port,
        server="ota-provider-test.local.",
    )
    try:
        zc.register_service(sub, allow_name_change=False)
    except Exception as e:  # a subtype registration is a nicety for browsers, not for resolving
        print(f"subtype not registered: {e}", file=sys.stderr)
    print("ADVERTISING", flush=True)
    deadline = time.monotonic() + args.timeout
    while not Path(args.stop_file).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    zc.unregister_all_services()
    zc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
