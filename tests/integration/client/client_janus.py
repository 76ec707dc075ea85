#!/usr/bin/env python3
"""conclave-client --target janus against a real Janus (Debian's package).

usage: client_janus.py CONCLAVE_CLIENT PERF_JANUS_DIR

Starts Janus with PERF_JANUS_DIR/start.sh in a network namespace of its
own (a fresh name, veth and 127.0.X.1/127.0.X.2 pair per run, so that a
Janus started by hand for measurements, perf/janus's defaults, is left
alone), runs two conclave-client endpoints in one new VideoRoom room for
a few seconds (A publishes audio and video, B audio) and checks media
both ways: packets > 0, no loss, one-way delay measured from the send
stamp (Janus forwards RTP padding, so the stamp survives it). Janus is
stopped with stop.sh (same settings) whatever happens; its log is
printed when a check fails.

Needs root (the namespace) and the `janus` package. Without them the test
is skipped (exit 77), unless CONCLAVE_REQUIRE_BROWSER is set (CI): then it
fails.
"""
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import client_media as cm  # noqa: E402  (shared helpers and checks)

DURATION_S = 4


def missing(what):
    if os.environ.get("CONCLAVE_REQUIRE_BROWSER"):
        cm.log(f"FAIL {what}")
        sys.exit(1)
    cm.log(f"SKIP {what}")
    sys.exit(77)


def janus_env(workdir):
    """Settings for perf/janus/common.sh unique to this run."""
    tag = secrets.token_hex(2)
    octet = 10 + secrets.randbelow(240)
    env = dict(os.environ)
    env.update({
        "JANUS_NS": f"cv-janus-t{tag}",
        "JANUS_VETH": f"cvjt{tag}",
        "JANUS_IP": f"127.0.{octet}.1",
        "JANUS_PEER_IP": f"127.0.{octet}.2",
        "JANUS_RUN_DIR": f"/run/conclave-janus-t{tag}",
        "JANUS_LOG": f"{workdir}/janus.log",
    })
    return env


def run_clients(client_exe, env):
    url = f"ws://{env['JANUS_IP']}:8188/"
    room = str(100000 + secrets.randbelow(10**9))
    common = [client_exe, "--target", "janus", "--url", url,
              "--janus-room", room, "--ice-address", env["JANUS_PEER_IP"],
              "--duration", str(DURATION_S), "--json"]
    a = cm.start(common + ["--name", "A", "--audio", "--video"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = cm.start(common + ["--name", "B", "--audio"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = []
    for name, p in (("A", a), ("B", b)):
        stdout, stderr = p.communicate(timeout=DURATION_S + 30)
        if stderr.strip():
            cm.log(f"client {name} stderr: {stderr.strip()}")
        try:
            rep = cm.json.loads(stdout)
        except ValueError:
            raise RuntimeError(f"client {name} (exit {p.returncode}) "
                               f"printed no JSON: {stdout!r}")
        cm.log(f"client {name}: exit {p.returncode}, state {rep['state']}, "
               f"ice {rep['ice']}, sent {rep['sent']}")
        for t in rep["tracks"]:
            cm.log(f"  {t['kind']} {t['track']}: packets {t['packets']} "
                   f"lost {t['lost']} p50 {t['delay_p50_us']} us "
                   f"p99 {t['delay_p99_us']} us")
        out.append((p.returncode, rep))
    return out


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    client_exe, janus_dir = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        missing("not root (Janus runs in a network namespace)")
    if not shutil.which("janus"):
        missing("janus (Debian package janus) is not installed")
    if not shutil.which("ip") or not shutil.which("curl"):
        missing("iproute2 and curl are needed by perf/janus/start.sh")
    workdir = tempfile.mkdtemp(prefix="cv-janus-test-")
    env = janus_env(workdir)
    cm.log(f"work directory {workdir}, namespace {env['JANUS_NS']}, "
           f"Janus at {env['JANUS_IP']}")
    c = cm.Checks()
    try:
        st = subprocess.run([os.path.join(janus_dir, "start.sh")], env=env,
                            capture_output=True, text=True, timeout=60)
        cm.log(st.stdout.strip())
        if st.returncode:
            raise RuntimeError(f"start.sh failed ({st.returncode}): "
                               f"{st.stderr.strip()}")
        (rc_a, a), (rc_b, b) = run_clients(client_exe, env)
        c.check(rc_a == 0 and rc_b == 0, "both clients exit 0")
        c.check(a["published"] and a["subscribed"],
                "A published and subscribed")
        c.check(b["published"] and b["subscribed"],
                "B published and subscribed")
        cm.check_track(c, b, "B", "audio")
        cm.check_track(c, b, "B", "video")
        cm.check_track(c, a, "A", "audio")
        c.check(a["ice"]["publish"] == "host" and
                b["ice"]["subscribe"] == "host",
                f"ICE pairs selected: A {a['ice']}, B {b['ice']}")
    except Exception as e:  # any failure still stops Janus
        c.check(False, f"exception: {e}")
    finally:
        cm.kill_all()
        st = subprocess.run([os.path.join(janus_dir, "stop.sh")], env=env,
                            capture_output=True, text=True, timeout=60)
        c.check(st.returncode == 0,
                f"stop.sh: {(st.stdout + st.stderr).strip()}")
        if c.failed:
            try:
                with open(env["JANUS_LOG"]) as f:
                    cm.log("janus log (tail):\n" +
                           "".join(f.readlines()[-30:]))
            except OSError:
                pass
        if not os.environ.get("CV_KEEP_TEST_DIR"):
            shutil.rmtree(workdir, ignore_errors=True)
    cm.log(f"{'FAIL' if c.failed else 'PASS'}: {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
