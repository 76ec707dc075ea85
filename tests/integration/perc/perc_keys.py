#!/usr/bin/env python3
"""Issue 4, done-when 2: the node never holds an end-to-end key.

usage: perc_keys.py CONCLAVE PERC_KEYS CONCLAVE_KMS KD_NODE MEMSCAN

Starts the real conclave-kms and the node (at debug log level, so that the
log scanned is as talkative as it gets), mints the tokens of A, B and C,
and runs perc_keys (see perc_keys.c): a perc call, then memscan over the
node's whole memory and its log, during the call and after it.
"""
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perc_e2e as h  # noqa: E402


def main():
    if len(sys.argv) != 6:
        print(__doc__)
        return 2
    node_exe, keys_exe, kms_exe, kd_node, memscan = sys.argv[1:6]
    tmp = tempfile.mkdtemp(prefix="perc-keys-")
    c = h.Checks()
    orig_start = h.start

    def node_at_debug(argv, **kw):
        if argv and argv[0] == node_exe:
            argv = argv + ["--log.level=debug"]
        return orig_start(argv, **kw)

    try:
        kms = h.start_kms(kms_exe, kd_node, tmp)
        h.start = node_at_debug
        try:
            node = h.start_node(node_exe, kms, tmp)
        finally:
            h.start = orig_start
        room = "keys" + secrets.token_hex(4)
        toks = []
        for sub in ("sub-a", "sub-b", "sub-c"):
            toks += h.tokens(node["secret"], kms["secret"], sub, room)
        p = h.start([keys_exe, node["url"], room, kms["cert"],
                     str(node["proc"].pid), node["log"], memscan] + toks,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    text=True)
        out, _ = p.communicate(timeout=100)
        for line in out.splitlines():
            if line.startswith(("ok", "FAIL")):
                c.check(line.startswith("ok"), line[5:])
            elif "event " not in line:
                h.log(line)
        c.check(p.returncode == 0, f"perc_keys exit {p.returncode}")
        c.check(node["proc"].poll() is None, "the node ran throughout")
    finally:
        h.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
    h.log(f"{'FAIL' if c.failed else 'PASS'}: {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
