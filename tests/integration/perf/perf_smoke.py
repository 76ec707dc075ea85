#!/usr/bin/env python3
"""CI smoke test of conclave-perf against the real node on loopback.

usage: perf_smoke.py CONCLAVE CONCLAVE_PERF
       (--smoke | --threshold | --meeting4 | --impair)

--impair: receive-side jitter (0..30 ms) and reordering (5 %) show in
the delay and reordering figures, with nothing lost.

--meeting4: issue 3's first check: a meeting of 4 for 30 measured
seconds, every track received, nothing lost in the measured window.

--smoke: conclave-perf starts the node itself (--start-node), runs a
meeting of 3 participants (audio + video) for 5 measured seconds and
writes its JSON report; the harness must exit 0 and the report show
packets received, no failed endpoint, no missing track, loss ~0, delay
samples with a plausible p50, and node CPU figures.

--threshold: a tiny meeting with --min-received far beyond what it can
receive must exit 1 (the deploy gate), with "passed": false and the
violation named in the report.

conclave-perf stops the node it started (also on SIGTERM, which this
test sends if the harness overruns).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile


def log(msg):
    print(msg, flush=True)


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, cond, what):
        log(("ok   " if cond else "FAIL ") + what)
        if not cond:
            self.failed += 1


def run_perf(perf, node, args, report, timeout):
    argv = [perf, "--start-node", node, "--json", report] + args
    log("$ " + " ".join(argv))
    p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)  # it stops its node, then exits
        out, _ = p.communicate()
        log(out)
        raise RuntimeError(f"conclave-perf overran {timeout} s")
    log(out.rstrip())
    with open(report) as f:
        return p.returncode, json.load(f)


def smoke(c, perf, node, report):
    rc, rep = run_perf(perf, node, ["--scenario", "meeting",
                                    "--participants", "3",
                                    "--duration", "5"], report, 45)
    c.check(rc == 0, f"exit status {rc}")
    c.check(rep["passed"] and not rep["violations"],
            f"passed, violations {rep['violations']}")
    eps = rep["endpoints"]
    c.check(eps["total"] == 3 and eps["up"] == 3 and eps["failed"] == 0,
            f"endpoints {eps}")
    rx = rep["totals"]["received"]
    # Each of the 3 receives the 2 others' audio and video.
    c.check(rx["tracks"] == 12 and rx["tracks_missing"] == 0,
            f"12 tracks received ({rx['tracks']}, "
            f"{rx['tracks_missing']} missing)")
    c.check(rx["packets"] > 500, f"{rx['packets']} packets received")
    # Loopback: nothing is lost (1 % allows a start-up race).
    c.check(rx["loss_pct"] <= 1.0, f"loss {rx['loss_pct']:.3f} %")
    c.check(rx["video_frames"] > 50, f"{rx['video_frames']} video frames")
    m = rep["measured"]
    d = m["delay_us"]
    c.check(d["samples"] > 100 and 0 < d["p50"] < 200000 and
            d["p50"] <= d["p99"] <= d["max"],
            f"delay p50 {d['p50']} us p99 {d['p99']} us "
            f"({d['samples']:.0f} samples)")
    c.check(m["packets"] > 0 and m["node_cpu_s"] is not None and
            m["node_cpu_s"] > 0 and m["cpu_us_per_packet"] is not None
            and m["cpu_us_per_packet"] > 0,
            f"node CPU {m['node_cpu_s']} s, {m['cpu_us_per_packet']} "
            f"us per forwarded packet")
    series = rep["series"]
    c.check(len(series) >= 5 and
            sum(1 for s in series if s["measured"]) == 5,
            f"{len(series)} seconds in the series, 5 measured")
    sent = rep["totals"]["sent"]
    c.check(sent["audio_packets"] > 0 and sent["video_packets"] > 0,
            f"sent {sent['audio_packets']} audio, "
            f"{sent['video_packets']} video packets")


def meeting4(c, perf, node, report):
    """Issue 3, done-when 1: a meeting of 4 for 30 s, 0 loss on loopback."""
    rc, rep = run_perf(perf, node, ["--scenario", "meeting",
                                    "--participants", "4",
                                    "--duration", "30"], report, 90)
    c.check(rc == 0, f"exit status {rc}")
    rx = rep["totals"]["received"]
    c.check(rx["tracks"] == 24 and rx["tracks_missing"] == 0,
            f"24 tracks received ({rx['tracks']}, "
            f"{rx['tracks_missing']} missing)")
    m = rep["measured"]
    c.check(m["seconds"] >= 30 and m["packets"] > 30 * 1000,
            f"{m['packets']} packets in {m['seconds']} measured s")
    c.check(m["lost"] == 0, f"{m['lost']} lost in the measured 30 s")
    c.check(m["delay_us"]["samples"] > 0 and m["cpu_us_per_packet"],
            f"delay p99 {m['delay_us']['p99']} us, "
            f"{m['cpu_us_per_packet']:.2f} CPU us per forwarded packet")


def impair(c, perf, node, report):
    """Jitter and reordering on the receive side take effect."""
    rc, rep = run_perf(perf, node, ["--scenario", "meeting",
                                    "--participants", "3",
                                    "--duration", "5",
                                    "--jitter", "30", "--reorder", "5"],
                       report, 45)
    c.check(rc == 0, f"exit status {rc}")
    rx = rep["totals"]["received"]
    d = rep["measured"]["delay_us"]
    # Holds of 0..30 ms (mean 15) plus 20 ms for 5 %: the median delay
    # moves from well under a millisecond to over 10 ms.
    c.check(d["p50"] > 10000, f"delay p50 {d['p50']} us with 0..30 ms jitter")
    c.check(rx["out_of_order"] > 0 or rx["recovered"] > 0,
            f"reordered packets seen ({rx['out_of_order']} out of order, "
            f"{rx['recovered']} recovered)")
    c.check(rx["loss_pct"] <= 1.0, f"loss {rx['loss_pct']:.3f} %")


def threshold(c, perf, node, report):
    rc, rep = run_perf(perf, node, ["--scenario", "audio",
                                    "--participants", "2",
                                    "--duration", "2",
                                    "--min-received", "1000000000"],
                       report, 30)
    c.check(rc == 1, f"exit status {rc} (1: threshold violated)")
    c.check(not rep["passed"], "report says not passed")
    c.check(any("--min-received" in v for v in rep["violations"]),
            f"violations {rep['violations']}")
    c.check(rep["totals"]["received"]["packets"] > 0,
            "media flowed all the same")


def main():
    modes = {"--smoke": smoke, "--threshold": threshold,
             "--meeting4": meeting4, "--impair": impair}
    if len(sys.argv) != 4 or sys.argv[3] not in modes:
        print(__doc__, file=sys.stderr)
        return 2
    node, perf, mode = sys.argv[1:4]
    c = Checks()
    with tempfile.TemporaryDirectory(prefix="cv-perf-test-") as d:
        report = os.path.join(d, "report.json")
        try:
            modes[mode](c, perf, node, report)
        except Exception as e:  # a missing report is a failure too
            c.check(False, f"exception: {e}")
    log(f"{'FAIL' if c.failed else 'PASS'}: {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
