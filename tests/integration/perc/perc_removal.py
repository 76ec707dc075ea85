#!/usr/bin/env python3
"""Issue 4, done-when 4: removal rotates the room key, the removed member
cannot decrypt what is sent after it, and the audit log shows it all.

usage: perc_removal.py CONCLAVE PERC_REMOVAL CONCLAVE_KMS KD_NODE

Starts the real conclave-kms (with an admin token, to read GET /audit) and
the node, mints the tokens of A, B and C, and runs perc_removal (C, the
client library in-process: see perc_removal.c). Then reads the KMS audit
log: C's grants (its key fetch, its endpoint registrations and the media
keys the Key Distributor handed out for its associations), A's removal of
C, and the rotation of the room key.
"""
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perc_e2e as h  # noqa: E402


def main():
    if len(sys.argv) != 5:
        print(__doc__)
        return 2
    node_exe, removal_exe, kms_exe, kd_node = sys.argv[1:5]
    tmp = tempfile.mkdtemp(prefix="perc-removal-")
    c = h.Checks()
    admin_token = secrets.token_hex(16)
    admin_port = h.free_tcp_port()
    orig_start = h.start

    def start_kms_with_admin(argv, **kw):
        if argv and argv[0] == kms_exe:
            conf = argv[argv.index("--config") + 1]
            text = open(conf).read().replace(
                "admin.port = 0\n", f"admin.port = {admin_port}\n")
            text += f"admin.token = {admin_token}\n"
            open(conf, "w").write(text)
        return orig_start(argv, **kw)

    try:
        h.start = start_kms_with_admin
        try:
            kms = h.start_kms(kms_exe, kd_node, tmp)
        finally:
            h.start = orig_start
        node = h.start_node(node_exe, kms, tmp)
        room = "rm" + secrets.token_hex(4)
        toks = []
        for sub in ("sub-a", "sub-b", "sub-c"):
            toks += h.tokens(node["secret"], kms["secret"], sub, room)
        p = h.start([removal_exe, node["url"], room, kms["cert"]] + toks,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    text=True)
        out, _ = p.communicate(timeout=90)
        for line in out.splitlines():
            if line.startswith(("ok", "FAIL")):
                c.check(line.startswith("ok"), line[5:])
            elif "event " not in line:
                h.log(line)
        c.check(p.returncode == 0, f"perc_removal exit {p.returncode}")

        req = urllib.request.Request(
            f"http://127.0.0.1:{admin_port}/audit?limit=10000",
            headers={"Authorization": f"Bearer {admin_token}"})
        rows = json.load(urllib.request.urlopen(req, timeout=5))["rows"]

        def rows_of(actor=None, action=None, granted=None, obj=None):
            return [r for r in rows
                    if (actor is None or r["actor"] == actor) and
                    (action is None or r["action"] == action) and
                    (granted is None or bool(r["granted"]) == granted) and
                    (obj is None or r["object"] == obj)]

        actions_c = sorted({r["action"] for r in rows_of("sub-c", None,
                                                          True)})
        h.log(f"audit rows: {len(rows)}; C's granted actions: {actions_c}")
        c.check(rows_of("sub-c", "key.get", True),
                "audit: C's room key fetch was granted and recorded")
        c.check(len([a for a in actions_c if a not in ("key.get",)]) >= 1,
                f"audit: C's endpoint registration / media keys recorded "
                f"({actions_c})")
        c.check(rows_of("sub-a", "member.remove", True, "sub-c"),
                "audit: A removed C")
        rot = rows_of(None, "key.rotate")
        c.check(bool(rot), f"audit: the room key was rotated "
                f"({len(rot)} row(s))")
        # After the removal, nothing was granted to C.
        rm_id = rows_of("sub-a", "member.remove", True, "sub-c")
        if rm_id:
            late = [r for r in rows_of("sub-c", None, True)
                    if r["id"] > rm_id[0]["id"]]
            c.check(not late, f"audit: no grant to C after its removal "
                    f"({[r['action'] for r in late]})")
        log = open(node["log"], errors="replace").read() + \
            open(kms["log"], errors="replace").read()
        c.check(all(t not in log for t in toks),
                "no token in the node's or the KMS's log")
    finally:
        h.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
    h.log(f"{'FAIL' if c.failed else 'PASS'}: {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
