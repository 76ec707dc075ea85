#!/usr/bin/env python3
"""Perc rooms vs forward rooms on a live node, side by side (perf/RESULTS.md,
"Perc rooms vs forward rooms").

usage: perc_vs_forward.py BUILD_DIR [PARTICIPANTS ROOMS DURATION RUNS]

Starts one conclave-kms and one node (one worker, perc configured), then
runs conclave-perf alternately with --scenario meeting (forward rooms) and
--scenario perc (the same meeting in perc rooms, KMS channel through the
node's relay), RUNS times each, same node, same load, and prints the
node's CPU us per forwarded packet and the harness's figures for each
run (packets received by all endpoints per second, node CPU, CPU us per
received packet, one-way delay p99, packets lost). Defaults: 4
participants, 4 rooms, 15 s, 3 runs.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration", "perc"))
import perc_e2e as h  # noqa: E402


def run(perf, node, kms, tmp, scenario, parts, rooms, dur, i):
    out = os.path.join(tmp, f"{scenario}-{i}.json")
    argv = [perf, "--url", node["url"], "--token-secret", node["secret"],
            "--node-pid", str(node["proc"].pid), "--scenario", scenario,
            "--participants", str(parts), "--rooms", str(rooms),
            "--duration", str(dur), "--warmup", "3", "--ramp-per-sec", "20",
            "--json", out, "--quiet"]
    if scenario == "perc":
        argv += ["--kms-cert", kms["cert"], "--kms-token-secret-file",
                 os.path.join(tmp, "kms-token.secret"), "--kms-issuer",
                 h.KMS_ISSUER]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return json.load(open(out))


def row(sc, i, rep):
    m = rep["measured"]
    secs = m["seconds"]
    return (f"{sc:8}  {i:3}  {m['packets'] / secs:10.0f}"
            f"  {100 * m['node_cpu_s'] / secs:10.1f}"
            f"  {m['cpu_us_per_packet']:10.2f}"
            f"  {m['delay_us']['p99'] / 1000:6.2f}  {m['lost']:4}")


def main():
    if len(sys.argv) not in (2, 6):
        print(__doc__)
        return 2
    b = sys.argv[1]
    parts, rooms, dur, runs = (int(x) for x in (sys.argv[2:6] or
                                                 (4, 4, 15, 3)))
    tmp = tempfile.mkdtemp(prefix="perc-vs-fwd-")
    try:
        kms = h.start_kms(f"{b}/kms/conclave-kms",
                          f"{b}/tests/integration/kms/kd_node", tmp)
        node = h.start_node(f"{b}/src/node/conclave", kms, tmp)
        print("scenario  run   rx_pkts/s  node_cpu_%  cpu_us/pkt  p99_ms  lost")
        for i in range(runs):
            for sc in ("meeting", "perc"):
                rep = run(f"{b}/perf/conclave-perf", node, kms, tmp, sc,
                          parts, rooms, dur, i)
                print(row(sc, i, rep), flush=True)
    finally:
        h.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
