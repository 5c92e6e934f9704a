"""Run a command in a private root file system whose ``/data`` and ``/tmp`` are scratch dirs.

The connectedhomeip controller hard-codes ``/data/chip_*.ini`` and ``/tmp/chip_kvs``. This
host has no ``/data``, and sharing ``/tmp`` would let concurrent runs clobber each other, so
the controller runs in a root of its own: a tmpfs on which every top-level directory of the
real root is recursively bind-mounted (the checkout and the venv stay visible), except that
``/data`` and ``/tmp`` are scratch directories of the caller.

Usage (as root, already in a fresh mount namespace, e.g. under ``unshare -m``)::

    python private_root.py --scratch DIR [--keep PATH ...] -- command args...

Nothing here leaks out: the mount tree is made private before anything is mounted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

PRIVATE_DIRS = ("data", "tmp")


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def build_root(scratch: str, keep: list[str]) -> str:
    """Assemble the private root under a new tmpfs and return its path.

    ``keep`` are paths that must stay visible even inside ``/data`` or ``/tmp`` (a checkout
    or virtualenv under /tmp, as CI runners do).
    """
    _mount("--make-rprivate", "/")
    root = tempfile.mkdtemp(prefix="private-root-", dir=scratch)
    _mount("-t", "tmpfs", "-o", "mode=0755", "private-root", root)
    for name in sorted(os.listdir("/")):
        if name in PRIVATE_DIRS:
            continue
        src = os.path.join("/", name)
        dst = os.path.join(root, name)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isdir(src):
            os.mkdir(dst)
            _mount("--rbind", src, dst)
        else:
            open(dst, "wb").close()
            _mount("--bind", src, dst)
    for name in PRIVATE_DIRS:
        own = os.path.join(scratch, name)
        os.makedirs(own, exist_ok=True)
        os.chmod(own, 0o1777 if name == "tmp" else 0o755)
        dst = os.path.join(root, name)
        os.mkdir(dst)
        _mount("--bind", own, dst)
    for path in keep:
        path = os.path.realpath(path)
        if path.split(os.sep)[1] in PRIVATE_DIRS and os.path.isdir(path):
            dst = root + path
            os.makedirs(dst, exist_ok=True)
            _mount("--rbind", path, dst)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", required=True, help="dir holding data/ and tmp/")
    parser.add_argument("--keep", action="append", default=[],
                        help="a path to keep visible (repeatable)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    cwd = os.getcwd()
    root = build_root(os.path.abspath(args.scratch), args.keep)
    os.chroot(root)
    os.chdir(cwd)
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
