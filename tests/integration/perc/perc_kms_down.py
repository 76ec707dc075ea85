#!/usr/bin/env python3
"""Issue 4, done-when 5 (restart survival) and 6: perc rooms outlive the
KMS, new perc joins fail fast while it is down, and service comes back
without restarting the node.

usage: perc_kms_down.py CONCLAVE CONCLAVE_CLIENT CONCLAVE_KMS KD_NODE

1. conclave-kms (SQLite) and the node; A creates a perc room at the KMS,
   adds B, D and E; A and B exchange audio and video for the whole test.
2. The KMS is stopped (SIGTERM) while A and B are in the call.
3. D, a member, tries to join: it must fail within 5 s, with an error
   that names the KMS.
4. The KMS is started again on the same ports, database and certificate.
   Without touching the node, a join by E must succeed within 20 s (the
   node's tunnel link reconnects with backoff, at most ~12.5 s), and E
   must verify A's media end to end with the room key read back from the
   restarted KMS's database.
5. A and B lost nothing over the whole call, outage included: every
   packet sent was forwarded (hop keys stay in the node, EKT keys in the
   endpoints; nothing in a running call needs the KMS).
"""
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perc_e2e as h  # noqa: E402

CALL_S = 22


def stop(p):
    os.killpg(p.pid, signal.SIGTERM)
    p.wait(timeout=10)


def restart_kms(kms_exe, kms, tmp):
    """The same config with the ports the first run picked."""
    conf = os.path.join(tmp, "kms.conf")
    text = open(conf).read()
    text = re.sub(r"channel\.port = 0", f"channel.port = {kms['channel_port']}",
                  text)
    text = re.sub(r"kd\.port = 0", f"kd.port = {kms['kd_port']}", text)
    conf2 = os.path.join(tmp, "kms2.conf")
    open(conf2, "w").write(text)
    start_at = os.path.getsize(kms["log"])
    p = h.start([kms_exe, "--config", conf2], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with open(kms["log"], errors="replace") as f:
            f.seek(start_at)
            if "kd ready" in f.read():
                return p
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError("conclave-kms did not come back")


def main():
    if len(sys.argv) != 5:
        print(__doc__)
        return 2
    node_exe, client_exe, kms_exe, kd_node = sys.argv[1:5]
    tmp = tempfile.mkdtemp(prefix="perc-kms-down-")
    c = h.Checks()
    try:
        kms = h.start_kms(kms_exe, kd_node, tmp)
        node = h.start_node(node_exe, kms, tmp)
        room = "down" + secrets.token_hex(4)
        a = h.run_endpoint(client_exe, node, kms, room, "sub-a",
                           ["--audio", "--video", "--perc-create-room",
                            "--perc-add", "sub-b", "--perc-add", "sub-d",
                            "--perc-add", "sub-e"], duration=CALL_S)
        a_err = h.wait_joined(a)
        c.check("conclave-client: joined" in a_err, "A joined")
        b = h.run_endpoint(client_exe, node, kms, room, "sub-b",
                           ["--audio", "--video"], duration=CALL_S - 1)
        b_err = h.wait_joined(b)
        c.check("conclave-client: joined" in b_err, "B joined")
        time.sleep(2)  # media flows before the outage (not a sync point)

        stop(kms["proc"])
        h.log("KMS stopped")
        t0 = time.monotonic()
        d = h.run_endpoint(client_exe, node, kms, room, "sub-d",
                           ["--audio"], duration=10)
        try:
            out, err = d.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            d.kill()
            out, err = d.communicate()
        took = time.monotonic() - t0
        errs = [ln for ln in err.splitlines() if "kms" in ln.lower()]
        c.check(d.returncode != 0 and took < 5.0,
                f"a perc join with the KMS down fails in {took:.2f} s "
                f"(exit {d.returncode})")
        c.check(bool(errs), "with a clear error: " +
                (errs[0] if errs else repr(err[-300:])))

        restart_kms(kms_exe, kms, tmp)
        h.log("KMS restarted")
        t1 = time.monotonic()
        joined_after = None
        e = None
        while time.monotonic() - t1 < 20:
            e = h.run_endpoint(client_exe, node, kms, room, "sub-e",
                               ["--audio", "--video"], duration=4)
            e_err = h.wait_joined(e, seconds=6)
            if "conclave-client: joined" in e_err:
                joined_after = time.monotonic() - t1
                break
            e.kill()
            e.wait()
            h.log("E: not yet: " + " | ".join(e_err.splitlines()[-2:]))
            time.sleep(0.5)
        c.check(joined_after is not None,
                "after the KMS came back a perc join succeeded in "
                f"{joined_after if joined_after is None else round(joined_after, 2)} s"
                " without a node restart")
        if joined_after is not None:
            rc, rep = h.collect("E", e, e_err)
            perc = rep.get("perc") or {}
            c.check(rc == 0 and perc.get("verified", 0) > 50 and
                    perc.get("payload_mismatch", -1) == 0,
                    "E verified the others' media with the room key read "
                    f"back after the restart ({perc.get('verified')})")
        for name, p, err in (("A", a, a_err), ("B", b, b_err)):
            rc, rep = h.collect(name, p, err)
            perc = rep.get("perc") or {}
            tracks = [t for t in rep["tracks"] if t["packets"] > 0]
            lost = sum(t["lost"] for t in tracks)
            expected = sum(t["expected"] for t in tracks)
            c.check(rc == 0 and perc.get("payload_mismatch", -1) == 0 and
                    expected > 0 and lost <= expected // 100,
                    f"{name}: the call went on through the outage (lost "
                    f"{lost} of {expected}, exit {rc})")
    finally:
        h.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
    h.log(f"{'FAIL' if c.failed else 'PASS'}: {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
