#!/usr/bin/env python3
"""conclave-kms as Key Distributor (RFC 9185 tunnel), as a black box.

    kd_link.py CONCLAVE_KMS KD_NODE

The daemon runs with kd.port = 0 and one pinned node certificate (plus an
unrelated pin, to exercise the list). A node-side cv_tunnel_link (the
kd_node helper) with the pinned certificate comes up; one with another
certificate is refused, and the refusal is in GET /audit with the
obfuscated certificate id as actor. SIGTERM with a node connected stops
the daemon cleanly and the node sees its link go down. Every wait polls
with a deadline.
"""
import hashlib
import hmac
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kms_daemon  # noqa: E402  (Daemon, get, check)
from kms_daemon import Daemon, check, get  # noqa: E402

TOKEN = "it-kd-admin-token-73c1"
OBF_KEY = "it-kd-obfuscation-key"
OTHER_PIN = "sha-256 " + ":".join(["5A"] * 32)


def obf(text):
    """cv_log_obfuscate() with the configured key."""
    return hmac.new(OBF_KEY.encode(), text.encode(),
                    hashlib.sha256).hexdigest()[:16]


def wait_for(pred, seconds, step=0.05):
    end = time.time() + seconds
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def log_match(path, pattern):
    return re.findall(pattern, open(path).read())


def audit_rows(port):
    st, body = get(port, "/audit", TOKEN)
    return json.loads(body)["rows"] if st == 200 else []


def read_line(proc, seconds):
    end = time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([proc.stdout], [], [], 0.1)
        if r:
            return proc.stdout.readline().strip()
    return ""


def node(helper, port, ident, pin, *extra):
    return subprocess.run([helper, "connect", str(port), ident[0], ident[1],
                           pin, "8000"] + list(extra),
                          capture_output=True, text=True, timeout=30)


def main():
    kms, helper = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="kms-kd-it-")
    d = None
    try:
        ids = {}
        for name in ("node", "stranger"):
            r = subprocess.run([helper, "cert", tmp, name],
                               capture_output=True, text=True, timeout=30)
            check(r.returncode == 0, "certificate %s made" % name)
            ids[name] = (os.path.join(tmp, name + "-cert.pem"),
                         os.path.join(tmp, name + "-key.pem"),
                         r.stdout.strip())
        conf = os.path.join(tmp, "kms.conf")
        log_path = os.path.join(tmp, "kms.log")
        with open(conf, "w") as f:
            f.write("kms.name = kms.test\n")
            f.write("kms.data_dir = %s/data\n" % tmp)
            f.write("admin.port = 0\n")
            f.write('admin.token = "%s"\n' % TOKEN)
            f.write('log.obfuscation_key = "%s"\n' % OBF_KEY)
            f.write("kd.address = 127.0.0.1\n")
            f.write("kd.port = 0\n")
            f.write('kd.node_fingerprints = "%s, %s"\n'
                    % (ids["node"][2], OTHER_PIN))

        d = Daemon(kms, conf, log_path)
        kd = log_match(log_path, r"kd ready \(address=127\.0\.0\.1:(\d+) "
                       r"nodes_allowed=(\d+)\)")
        check(len(kd) == 1 and kd[0][1] == "2",
              "kd ready with both pins: %s" % kd)
        kd_port = int(kd[0][0]) if kd else 0
        fps = log_match(log_path, r"cert=(sha-256 [0-9A-F:]+)")
        check(len(fps) == 1, "the KMS certificate is logged")
        kms_fp = fps[0] if fps else ""

        # The pinned node: accepted, seen by the KD.
        r = node(helper, kd_port, ids["node"], kms_fp)
        check(r.returncode == 0 and r.stdout.strip() == "up",
              "the pinned node is accepted (%r)" % r.stdout)
        node_id = obf(ids["node"][2])
        check(wait_for(lambda: log_match(
            log_path, r"kd: node up \(node=%s " % node_id), 10),
            "the KD saw the node up under its obfuscated id")

        # Another certificate: refused by the KD, audited.
        r = node(helper, kd_port, ids["stranger"], kms_fp)
        check(r.returncode == 1 and r.stdout.startswith("down "),
              "a node with another certificate is refused (%r)" % r.stdout)
        stranger_id = obf(ids["stranger"][2])
        rows = wait_for(lambda: [x for x in audit_rows(d.port)
                                 if x["action"] == "node.connect"], 10)
        check(len(rows) >= 1, "the refusal is in GET /audit")
        if rows:
            x = rows[0]
            check(x["actor"] == stranger_id and not x["granted"] and
                  x["reason"] == "unknown node certificate" and
                  x["room"] == "",
                  "refusal row: obfuscated certificate id, denied, reason "
                  "(%s)" % x)
        check(all(x["actor"] != node_id for x in rows),
              "the accepted node left no refusal row")

        # SIGTERM with a node connected: clean exit, the node sees it.
        p = subprocess.Popen([helper, "connect", str(kd_port),
                              ids["node"][0], ids["node"][1], kms_fp,
                              "20000", "hold"],
                             stdout=subprocess.PIPE, text=True)
        check(read_line(p, 10) == "up", "a node holds the link")
        check(wait_for(lambda: len(log_match(
            log_path, r"kd: node up \(node=%s " % node_id)) == 2, 10),
            "the KD saw the second connection")
        rc = d.stop()
        d = None
        check(rc == 0, "SIGTERM with a node connected: clean exit")
        check(read_line(p, 10).startswith("down "),
              "the node saw the link go down")
        check(p.wait(timeout=10) == 0, "the node helper ended")

        log = open(log_path).read()
        check(ids["stranger"][2] not in log and ids["node"][2] not in log,
              "node fingerprints are not logged in clear")
        check("stopping" in log, "the stop is logged")

        # kd.port without pins, and a malformed pin: refused at start.
        r = subprocess.run([kms, "--config", conf,
                            "--kd.node_fingerprints="],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 1, "kd.port without kd.node_fingerprints "
              "does not start (rc=%d)" % r.returncode)
        r = subprocess.run([kms, "--config", conf,
                            "--kd.node_fingerprints=sha-256 12:34"],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 2 and "kd.node_fingerprints" in r.stderr,
              "a malformed pin is a config error (rc=%d)" % r.returncode)
    finally:
        if d is not None:
            d.proc.kill()
            d.proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (kms_daemon.passes, kms_daemon.failures))
    return 1 if kms_daemon.failures else 0


if __name__ == "__main__":
    sys.exit(main())
