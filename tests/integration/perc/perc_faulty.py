#!/usr/bin/env python3
"""Issue 4, done-when 3: a faulty node cannot slip a modified packet past
a perc receiver.

usage: perc_faulty.py FAULTY_CONCLAVE CONCLAVE_CLIENT CONCLAVE_KMS KD_NODE

FAULTY_CONCLAVE is a node built with -Dperc_faulty_node=true (a test-only
build; scripts/test.sh makes it in build-faulty). For each fault kind the
node tampers with EVERY perc RTP packet it forwards (perc.fault=KIND):
the SSRC, the timestamp, a payload byte, an inner-tag byte, the OHB, or
the EKT field moved inside the packet; then it re-applies the outer layer
with the receiver's real hop key, as a compromised node could. Two
endpoints (A, B) publish audio and video to each other for a few seconds.

Checks per kind: the node tampered with packets (its /metrics counter);
no receiver delivered any packet (perc verified 0, payload mismatches 0);
the receivers rejected and counted at least every tampered packet that
reached them (sum of their drop counters, by reason, printed) -- the only
slack is what the node forwarded after a receiver had already stopped;
and every rejection has a reason that fits the fault.
"""
import os
import secrets
import shutil
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perc_e2e as h  # noqa: E402

DURATION_S = 4

# Which receiver-side counters a fault may land in. A receiver installs a
# sender's inner key (from a FullEKTField) only once a packet carrying it
# verifies end to end; under a fault none does, so after the first few
# packets every rejection is `no_key`, whatever the fault. The first ones
# land where the fault is caught: a changed SSRC leaves no key for it (or
# mismatches the EKT field); a moved EKT field is no longer framed at the
# end (or names the wrong SSRC, or breaks the inner tag).
REASONS = {
    "ssrc": {"unknown_ssrc", "no_key", "ekt_ssrc"},
    "timestamp": {"inner", "no_key"},
    "payload": {"inner", "no_key"},
    "inner_tag": {"inner", "no_key"},
    "ohb": {"ohb", "inner", "no_key"},
    "ekt_move": {"ekt_field", "ekt_ssrc", "ekt_unwrap", "ohb", "inner",
                 "no_key"},
}


def metric(admin_port, name):
    body = urllib.request.urlopen(
        f"http://127.0.0.1:{admin_port}/metrics", timeout=5).read().decode()
    total = 0
    for line in body.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += int(float(line.split()[-1]))
    return total


def rejections(perc):
    out = {k: v for k, v in (perc.get("drops") or {}).items() if v}
    if perc.get("unknown_ssrc"):
        out["unknown_ssrc"] = perc["unknown_ssrc"]
    return out


def run_kind(c, kind, node_exe, client_exe, kms, tmp):
    ktmp = os.path.join(tmp, kind)
    os.makedirs(ktmp)
    orig_start = h.start

    node = None
    try:
        exe_args = [node_exe, f"--perc.fault={kind}"]

        def start_with_fault(argv, **kw):
            if argv and argv[0] == node_exe:
                argv = exe_args + argv[1:]
            return orig_start(argv, **kw)

        h.start = start_with_fault
        node = h.start_node(node_exe, kms, ktmp)
    finally:
        h.start = orig_start
    room = "fault" + secrets.token_hex(4)
    a = h.run_endpoint(client_exe, node, kms, room, "sub-a",
                       ["--audio", "--video", "--perc-create-room",
                        "--perc-add", "sub-b"], duration=DURATION_S)
    a_err = h.wait_joined(a)
    b = h.run_endpoint(client_exe, node, kms, room, "sub-b",
                       ["--audio", "--video"], duration=DURATION_S)
    _, ra = h.collect(f"{kind}/A", a, a_err)
    _, rb = h.collect(f"{kind}/B", b)
    injected = metric(node["admin"], "conclave_perc_faults_injected_total")
    forwarded = metric(node["admin"], "conclave_perc_forwarded_total")
    c.check(injected > 100 and injected == forwarded,
            f"{kind}: the node tampered with every forwarded packet "
            f"({injected} of {forwarded})")
    total = 0
    for name, rep in (("A", ra), ("B", rb)):
        perc = rep.get("perc") or {}
        rej = rejections(perc)
        total += sum(rej.values())
        c.check(perc.get("verified", -1) == 0 and
                perc.get("payload_mismatch", -1) == 0,
                f"{kind}: {name} delivered nothing (verified "
                f"{perc.get('verified')}, mismatches "
                f"{perc.get('payload_mismatch')})")
        c.check(set(rej) <= REASONS[kind] and rej,
                f"{kind}: {name} rejected with {rej} "
                f"(allowed: {sorted(REASONS[kind])})")
    # Forwarded after a receiver stopped: at most the last ~0.5 s of the
    # other's media (about 50 packets/s of audio+video each way).
    c.check(injected - 60 <= total <= injected,
            f"{kind}: receivers counted {total} rejections for {injected} "
            "tampered packets")
    h.kill_all()
    h.procs.clear()


def main():
    if len(sys.argv) != 5:
        print(__doc__)
        return 2
    node_exe, client_exe, kms_exe, kd_node = sys.argv[1:5]
    tmp = tempfile.mkdtemp(prefix="perc-faulty-")
    c = h.Checks()
    try:
        kinds = os.environ.get("PERC_FAULTS", ",".join(REASONS)).split(",")
        for kind in kinds:
            ktmp = os.path.join(tmp, "k-" + kind)
            os.makedirs(ktmp)
            kms = h.start_kms(kms_exe, kd_node, ktmp)
            run_kind(c, kind, node_exe, client_exe, kms, tmp)
    finally:
        h.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
    h.log(f"{'FAIL' if c.failed else 'PASS'}: {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
