#!/usr/bin/env python3
"""A member removal while an endpoint cannot reach the KMS: that endpoint
sends nothing until it has the new key (RFC 8870 timing: never media under
the key of a room someone has left), retries, and resumes once the KMS
answers again -- the call does not end. (Until then it cannot decrypt what
the others send under the new key either: those packets are counted as
ekt_spi / inner drops at B, which is the point of the rotation.)

usage: perc_rekey_retry.py CONCLAVE CONCLAVE_CLIENT CONCLAVE_KMS KD_NODE

A creates the room (through the node's relay) and removes C after 5 s.
B reaches conclave-kms directly, through a TCP proxy of this test. Once B
has joined, the proxy starts refusing (accept, then close at once). When
B has had its `rekey` and has tried the KMS at least twice, the proxy lets
connections through again. Checks: B retried, held packets back (sent
none under the old key), then rekeyed once and went on; A verified B's
media after that with no end-to-end drop; nothing was lost at A beyond
the packets B held back.
"""
import os
import secrets
import selectors
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perc_e2e as h  # noqa: E402


class Proxy:
    """TCP forwarder to 127.0.0.1:port; refuse() makes it close every new
    connection at once (the client sees the KMS as unreachable)."""

    def __init__(self, port):
        self.target = port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.refusing = False
        self.refused = 0
        self.cond = threading.Condition()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.cond:
                if self.refusing:
                    self.refused += 1
                    self.cond.notify_all()
                    c.close()
                    continue
            threading.Thread(target=self.pipe, args=(c,), daemon=True).start()

    def pipe(self, c):
        try:
            u = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            c.close()
            return
        sel = selectors.DefaultSelector()
        sel.register(c, selectors.EVENT_READ, u)
        sel.register(u, selectors.EVENT_READ, c)
        try:
            while True:
                for key, _ in sel.select(timeout=10):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            pass
        finally:
            c.close()
            u.close()

    def wait_refused(self, n, seconds):
        with self.cond:
            return self.cond.wait_for(lambda: self.refused >= n, seconds)


def wait_line(p, text, seconds):
    """Reads p's stderr until a line containing text; returns all read."""
    fd = p.stderr.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    seen = ""
    deadline = time.monotonic() + seconds
    while text not in seen and time.monotonic() < deadline:
        if not sel.select(timeout=max(0, deadline - time.monotonic())):
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        seen += chunk.decode(errors="replace")
    sel.close()
    return seen


def main():
    if len(sys.argv) != 5:
        print(__doc__)
        return 2
    node_exe, client_exe, kms_exe, kd_node = sys.argv[1:5]
    tmp = tempfile.mkdtemp(prefix="perc-rekey-retry-")
    c = h.Checks()
    try:
        kms = h.start_kms(kms_exe, kd_node, tmp)
        node = h.start_node(node_exe, kms, tmp)
        proxy = Proxy(kms["channel_port"])
        via_proxy = dict(kms, channel_port=proxy.port)
        room = "retry" + secrets.token_hex(4)
        a = h.run_endpoint(client_exe, node, kms, room, "sub-a",
                           ["--audio", "--video", "--perc-create-room",
                            "--perc-add", "sub-b", "--perc-add", "sub-c",
                            "--perc-remove", "sub-c",
                            "--perc-remove-after", "5"], duration=13)
        a_err = h.wait_joined(a)
        c.check("conclave-client: joined" in a_err, "A joined")
        b = h.run_endpoint(client_exe, node, via_proxy, room, "sub-b",
                           ["--audio", "--video"], duration=12,
                           direct=True)
        b_err = h.wait_joined(b)
        c.check("conclave-client: joined" in b_err,
                "B joined (its KMS channel through the test's proxy)")
        # B needs the KMS again only for the rekey: from now on it cannot
        # reach it.
        with proxy.cond:
            proxy.refusing = True
        cc = h.run_endpoint(client_exe, node, kms, room, "sub-c",
                            ["--audio", "--video"], duration=10)
        c_err = h.wait_joined(cc)
        b_err += wait_line(b, "event rekey", 15)
        c.check("event rekey" in b_err, "B got `rekey` (A removed C) while "
                "its KMS was unreachable")
        c.check(proxy.wait_refused(2, 10),
                f"B tried the KMS again and again ({proxy.refused} refused)")
        with proxy.cond:
            proxy.refusing = False
        _, rb = h.collect("B", b, b_err)
        _, ra = h.collect("A", a, a_err)
        h.collect("C", cc, c_err)
        pb = rb.get("perc") or {}
        pa = ra.get("perc") or {}
        c.check(pb.get("rekey_retries", 0) >= 2 and pb.get("rekeys") == 1,
                f"B retried the key fetch ({pb.get('rekey_retries')} times) "
                f"and then rekeyed once ({pb.get('rekeys')})")
        c.check(pb.get("held_for_rekey", 0) > 10,
                f"B sent nothing while its new key was due "
                f"({pb.get('held_for_rekey')} packets held back)")
        c.check(rb["state"] != "failed" and b.returncode == 0,
                f"B's call went on (state {rb['state']}, exit "
                f"{b.returncode})")
        drops = {k: v for k, v in (pa.get("drops") or {}).items() if v}
        c.check(pa.get("verified", 0) > 300 and not drops and
                pa.get("payload_mismatch", -1) == 0,
                f"A verified media end to end throughout ({pa.get('verified')}"
                f" packets, drops {drops or 'none'})")
        built = rb["sent"]["audio_packets"] + rb["sent"]["video_packets"]
        c.check(0 < pb.get("held_for_rekey", 0) < built // 4 and
                pb.get("sent", 0) + pb.get("held_for_rekey", 0) >= built,
                f"B resumed sending once rekeyed (held back "
                f"{pb.get('held_for_rekey')} of {built} packets, sent "
                f"{pb.get('sent')})")
    finally:
        h.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
    h.log(f"{'FAIL' if c.failed else 'PASS'}: {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
