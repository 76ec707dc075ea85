#!/usr/bin/env python3
"""conclave-kms as a black box: start it, read its admin API, restart it,
and check that keys and audit rows survived.

    kms_daemon.py CONCLAVE_KMS KMS_FIXTURE sqlite|postgres

The postgres variant runs under tests/unit/kms/with_postgres.sh, which
starts a throw-away server and sets PGHOST/PGPORT/PGUSER.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOM = "conclave://rooms/integration-1"
TOKEN = "it-admin-token-5f1c9b"
failures = 0
passes = 0


def check(cond, what):
    global failures, passes
    if not cond:
        failures += 1
        print("FAIL: " + what, file=sys.stderr)
    else:
        passes += 1
        print("ok: " + what)


def get(port, path, token=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Daemon:
    def __init__(self, exe, conf, log_path):
        self.log_path = log_path
        start = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen([exe, "--config", conf],
                                     stdout=self.log, stderr=self.log)
        self.port = None
        deadline = time.time() + 15
        while time.time() < deadline and self.port is None:
            if self.proc.poll() is not None:
                break
            m = re.findall(r"ready \(.*admin=127\.0\.0\.1:(\d+)",
                           open(log_path).read()[start:])
            if m:
                self.port = int(m[-1])
            else:
                time.sleep(0.05)
        if self.port is None:
            sys.stderr.write(open(log_path).read())
            raise SystemExit("conclave-kms did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=10)
        self.log.close()
        return rc


def audit(port, room=ROOM):
    st, body = get(port, "/audit?room=" + urllib.request.quote(room, safe=""),
                   TOKEN)
    check(st == 200, "GET /audit answers 200 (got %d)" % st)
    return json.loads(body)["rows"] if st == 200 else []


def fixture(exe, conf, *args):
    r = subprocess.run([exe, "--config", conf] + list(args),
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
    return r.returncode, r.stdout.strip()


def main():
    kms, fix, backend = sys.argv[1], sys.argv[2], sys.argv[3]
    tmp = tempfile.mkdtemp(prefix="kms-it-")
    try:
        conf = os.path.join(tmp, "kms.conf")
        log_path = os.path.join(tmp, "kms.log")
        with open(conf, "w") as f:
            f.write("kms.name = kms.test\n")
            f.write("kms.data_dir = %s/data\n" % tmp)
            f.write("admin.port = 0\n")
            f.write('admin.token = "%s"\n' % TOKEN)
            if backend == "postgres":
                if "PGHOST" not in os.environ:
                    raise SystemExit("postgres: run under with_postgres.sh")
                f.write("kms.database = postgresql:///postgres\n")

        d = Daemon(kms, conf, log_path)
        st, body = get(d.port, "/healthz")
        check(st == 200 and body == "ok\n", "healthz is ok")
        check(get(d.port, "/audit")[0] == 401, "audit without token: 401")
        check(get(d.port, "/audit", "wrong")[0] == 401,
              "audit with a wrong token: 401")
        check(audit(d.port) == [], "no audit rows on a fresh database")

        rc, _ = fixture(fix, conf, "seed", ROOM)
        check(rc == 0, "fixture seeded the room")
        rows = audit(d.port)
        seen = [(r["actor"], r["action"], r["granted"]) for r in rows]
        want = [("operator-1", "room.create", True),
                ("operator-1", "key.create", True),
                ("operator-1", "member.add", True),
                ("operator-1", "member.add", True),
                ("member-a", "key.get", True),
                ("member-b", "key.get", True),
                ("outsider-x", "key.get", False),
                ("operator-1", "member.remove", True),
                ("operator-1", "key.rotate", True)]
        check(seen == want, "audit rows in order: %s" % seen)
        rc, key_before = fixture(fix, conf, "key", ROOM, "member-a")
        check(rc == 0 and key_before.startswith("1 kms://kms.test/keys/"),
              "member-a holds epoch 1 (%s)" % key_before)
        rc, _ = fixture(fix, conf, "key", ROOM, "member-b")
        check(rc != 0, "removed member-b is refused")
        n_rows = len(audit(d.port))
        check(n_rows == len(want) + 2, "every key access left a row")
        check(d.stop() == 0, "SIGTERM: clean exit")

        # Restart: same certificate, same keys, same audit log.
        d = Daemon(kms, conf, log_path)
        rows = audit(d.port)
        check(len(rows) == n_rows, "audit rows survived the restart")
        rc, key_after = fixture(fix, conf, "key", ROOM, "member-a")
        check(rc == 0 and key_after == key_before,
              "the room key survived the restart")
        check(len(audit(d.port)) == n_rows + 1, "the access after restart "
              "is audited")
        check(d.stop() == 0, "SIGTERM again: clean exit")

        log = open(log_path).read()
        fps = re.findall(r"cert=(sha-256 [0-9A-F:]+)", log)
        check(len(fps) == 2 and fps[0] == fps[1],
              "the certificate is stored, not regenerated")
        check(TOKEN not in log, "the admin token is never logged")
        check(ROOM not in log and "member-a" not in log,
              "room and member ids are not logged in clear")
        check(log.count("stopping") == 2, "both stops logged")
        mode = os.stat(os.path.join(tmp, "data", "master.key")).st_mode
        check(mode & 0o077 == 0, "master.key is private")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passes, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
