#!/usr/bin/env node
// Media check for the Janus started by perf/janus/start.sh (manual/perf
// tool, not a CI test).
//
// Two headless Chromium pages each open the Janus WebSocket API, create a
// session, attach the VideoRoom plugin, join a fresh room as publishers and
// publish fake-camera audio+video (JSEP offer, Janus answers); then each
// subscribes to the other (Janus offers, the page answers) and the check
// waits until both pages decode the other's video (framesDecoded > 0) and
// receive its audio. Exits 0 when both directions work.
//
//   node perf/janus/check.mjs [--url ws://127.0.1.1:8188/] [--verbose] [--sdp]
//
// --verbose prints every Janus API message (SDP shortened to its candidate
// addresses), the reference for what a harness must send; --sdp prints
// them with full SDP. Needs playwright-core, installed under
// tests/integration/browser/node_modules (npm ci there), and Chromium
// (/usr/bin/chromium, or CONCLAVE_CHROMIUM).

import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const BROWSER_DIR = join(HERE, '..', '..', 'tests', 'integration', 'browser');
const CHROMIUM = process.env.CONCLAVE_CHROMIUM || '/usr/bin/chromium';
const HARD_TIMEOUT_MS = 90_000;

const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  // Chromium classifies 127.0.1.2 (the veth's host end) as loopback by
  // address and would not gather it without this.
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
];

function parseArgs(argv) {
  const opts = { url: process.env.JANUS_URL || 'ws://127.0.1.1:8188/', verbose: false, sdp: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--url' && i + 1 < argv.length) opts.url = argv[++i];
    else if (argv[i] === '--verbose' || argv[i] === '-v') opts.verbose = true;
    else if (argv[i] === '--sdp') opts.verbose = opts.sdp = true;
    else {
      console.error('usage: node perf/janus/check.mjs [--url ws://IP:PORT/] [--verbose] [--sdp]');
      process.exit(2);
    }
  }
  return opts;
}

// ----------------------------------------------------------------- page side
// Installed into each page with page.evaluate(): a minimal Janus WebSocket
// API client on window.J. Runs in the browser, so it only uses web APIs.
function installClient(fullSdp) {
  const trace = [];
  const waiters = new Map(); // transaction -> {resolve, reject, wantEvent}
  const handleEvents = new Map(); // handle id -> list of async events
  let ws = null;
  let sessionId = null;
  let nextTxn = 1;
  let keepalive = null;

  // SDP shortened to its size and candidate addresses.
  const sdpSummary = (sdp) => {
    const cands = [...sdp.matchAll(/^a=candidate:\S+ (\d) (\S+) \d+ (\S+) (\d+) typ (\S+)/gm)]
      .filter((c) => c[1] === '1')
      .map((c) => `${c[2].toLowerCase()} ${c[3]}:${c[4]} ${c[5]}`);
    return `<${sdp.length} bytes; candidates: ${[...new Set(cands)].join(', ') || 'none'}>`;
  };
  const short = (m) =>
    fullSdp
      ? JSON.stringify(m, null, 1)
      : JSON.stringify(m, (k, v) => (k === 'sdp' && typeof v === 'string' ? sdpSummary(v) : v));

  function onMessage(ev) {
    const msg = JSON.parse(ev.data);
    trace.push(`<- ${short(msg)}`);
    const w = msg.transaction && waiters.get(msg.transaction);
    if (w) {
      if (msg.janus === 'error') {
        waiters.delete(msg.transaction);
        w.reject(new Error(`janus error ${msg.error?.code}: ${msg.error?.reason}`));
        return;
      }
      // Asynchronous plugin requests get an 'ack' first, then an 'event'
      // carrying the same transaction.
      if (msg.janus === 'ack' && w.wantEvent) return;
      const err = msg.plugindata?.data?.error;
      waiters.delete(msg.transaction);
      if (err) w.reject(new Error(`videoroom error ${msg.plugindata.data.error_code}: ${err}`));
      else w.resolve(msg);
      return;
    }
    if (msg.sender) {
      if (!handleEvents.has(msg.sender)) handleEvents.set(msg.sender, []);
      handleEvents.get(msg.sender).push(msg);
    }
  }

  function call(body, wantEvent = false) {
    const transaction = `t${nextTxn++}`;
    const msg = { ...body, transaction };
    if (sessionId !== null && body.janus !== 'create') msg.session_id = sessionId;
    return new Promise((resolve, reject) => {
      waiters.set(transaction, { resolve, reject, wantEvent });
      trace.push(`-> ${short(msg)}`);
      ws.send(JSON.stringify(msg));
    });
  }

  async function gathered(pc) {
    if (pc.iceGatheringState === 'complete') return;
    await new Promise((resolve) => {
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') resolve();
      });
    });
  }

  const pcs = {};

  window.J = {
    trace,
    handleEvents: (id) => handleEvents.get(id) || [],

    async connect(url) {
      ws = new WebSocket(url, 'janus-protocol');
      ws.onmessage = onMessage;
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error(`cannot open ${url}`));
      });
      const r = await call({ janus: 'create' });
      sessionId = r.data.id;
      keepalive = setInterval(() => call({ janus: 'keepalive' }).catch(() => {}), 25_000);
      return sessionId;
    },

    async attach() {
      const r = await call({ janus: 'attach', plugin: 'janus.plugin.videoroom' });
      return r.data.id;
    },

    // Synchronous VideoRoom request (create, destroy, ...): 'success' reply.
    async request(handle, body) {
      const r = await call({ janus: 'message', handle_id: handle, body });
      return r.plugindata.data;
    },

    async publish(handle, room, display) {
      const joined = await call(
        { janus: 'message', handle_id: handle, body: { request: 'join', ptype: 'publisher', room, display } },
        true,
      );
      const { id, private_id: privateId } = joined.plugindata.data;
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: true,
        video: { width: 640, height: 360, frameRate: 30 },
      });
      const pc = new RTCPeerConnection();
      pcs.pub = pc;
      for (const t of stream.getTracks()) pc.addTrack(t, stream);
      await pc.setLocalDescription(await pc.createOffer());
      // Half-trickle the simple way: wait for all host candidates (instant
      // on a local box) and send them inside the offer.
      await gathered(pc);
      const r = await call(
        {
          janus: 'message',
          handle_id: handle,
          body: { request: 'publish', audio: true, video: true },
          jsep: { type: 'offer', sdp: pc.localDescription.sdp },
        },
        true,
      );
      await call({ janus: 'trickle', handle_id: handle, candidate: { completed: true } });
      await pc.setRemoteDescription(r.jsep);
      return { id, privateId, configured: r.plugindata.data.configured };
    },

    async subscribe(handle, room, feed, privateId) {
      const r = await call(
        {
          janus: 'message',
          handle_id: handle,
          body: { request: 'join', ptype: 'subscriber', room, streams: [{ feed }], private_id: privateId },
        },
        true,
      );
      const pc = new RTCPeerConnection();
      pcs.sub = pc;
      await pc.setRemoteDescription(r.jsep);
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(pc);
      const s = await call(
        {
          janus: 'message',
          handle_id: handle,
          body: { request: 'start' },
          jsep: { type: 'answer', sdp: pc.localDescription.sdp },
        },
        true,
      );
      await call({ janus: 'trickle', handle_id: handle, candidate: { completed: true } });
      return s.plugindata.data.started;
    },

    async inbound() {
      const out = { framesDecoded: 0, videoPackets: 0, audioPackets: 0, pair: null };
      if (!pcs.sub) return out;
      const stats = await pcs.sub.getStats();
      for (const s of stats.values()) {
        if (s.type === 'inbound-rtp' && s.kind === 'video') {
          out.framesDecoded += s.framesDecoded || 0;
          out.videoPackets += s.packetsReceived || 0;
        }
        if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audioPackets += s.packetsReceived || 0;
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
          const l = stats.get(s.localCandidateId);
          const r = stats.get(s.remoteCandidateId);
          out.pair = `${l?.address}:${l?.port} <-> ${r?.address}:${r?.port}`;
        }
      }
      return out;
    },

    async close() {
      clearInterval(keepalive);
      for (const pc of Object.values(pcs)) pc.close();
      if (sessionId !== null) await call({ janus: 'destroy' }).catch(() => {});
      ws.close();
    },
  };
}

// ----------------------------------------------------------------- node side

const PAGE = '<!doctype html><meta charset="utf-8"><title>janus check</title>';

/** Serves one blank page on 127.0.0.1 (a secure context for getUserMedia). */
async function startPageServer() {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(PAGE);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

let failures = 0;
function check(ok, what) {
  console.log(`${ok ? 'PASS' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const require = createRequire(join(BROWSER_DIR, 'package.json'));
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch {
    console.error(`playwright-core is not installed: run npm ci --prefix ${BROWSER_DIR}`);
    process.exit(2);
  }

  const server = await startPageServer();
  const origin = `http://127.0.0.1:${server.address().port}/`;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const hard = setTimeout(() => {
    console.error(`FAIL hard timeout (${HARD_TIMEOUT_MS / 1000}s)`);
    browser.close().finally(() => process.exit(1));
  }, HARD_TIMEOUT_MS);

  const names = ['alice', 'bob'];
  const pages = [];
  try {
    for (const name of names) {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      page.on('console', (m) => opts.verbose && console.log(`[${name} console] ${m.text()}`));
      await page.goto(origin);
      await page.evaluate(installClient, opts.sdp);
      pages.push(page);
    }
    const [a, b] = pages;

    // Sessions and publisher handles.
    const sessions = await Promise.all(pages.map((p) => p.evaluate((u) => J.connect(u), opts.url)));
    check(sessions.every((s) => typeof s === 'number'), `sessions created at ${opts.url}`);
    const pubHandles = await Promise.all(pages.map((p) => p.evaluate(() => J.attach())));

    // A fresh room, so leftovers of earlier runs cannot interfere.
    const room = 100000 + Math.floor(Math.random() * 800000);
    const created = await a.evaluate(
      ([h, r]) =>
        J.request(h, {
          request: 'create',
          room: r,
          permanent: false,
          description: 'conclave janus check',
          publishers: 10,
          bitrate: 0,
          fir_freq: 0,
          audiocodec: 'opus',
          videocodec: 'vp8',
        }),
      [pubHandles[0], room],
    );
    check(created.videoroom === 'created', `room ${room} created`);

    const pubs = await Promise.all(
      pages.map((p, i) =>
        p.evaluate(([h, r, n]) => J.publish(h, r, n), [pubHandles[i], room, names[i]]),
      ),
    );
    check(pubs.every((p) => p.configured === 'ok'), 'both publishers joined and published');

    // Each page subscribes to the other's feed.
    const subHandles = await Promise.all(pages.map((p) => p.evaluate(() => J.attach())));
    const started = await Promise.all(
      pages.map((p, i) =>
        p.evaluate(([h, r, feed, pid]) => J.subscribe(h, r, feed, pid), [
          subHandles[i],
          room,
          pubs[1 - i].id,
          pubs[i].privateId,
        ]),
      ),
    );
    check(started.every((s) => s === 'ok'), 'both subscriptions started');

    // Poll getStats until each page decodes the other's video.
    const deadline = Date.now() + 20_000;
    let stats = [];
    for (;;) {
      stats = await Promise.all(pages.map((p) => p.evaluate(() => J.inbound())));
      if (stats.every((s) => s.framesDecoded > 0 && s.audioPackets > 0)) break;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    stats.forEach((s, i) => {
      const from = names[1 - i];
      check(s.framesDecoded > 0, `${names[i]} decodes ${from}'s video (framesDecoded=${s.framesDecoded}, packets=${s.videoPackets})`);
      check(s.audioPackets > 0, `${names[i]} receives ${from}'s audio (packets=${s.audioPackets})`);
      console.log(`     ${names[i]} subscriber ICE pair: ${s.pair}`);
    });

    const ups = await Promise.all(
      pages.map((p, i) =>
        p.evaluate(
          (hs) => hs.map((h) => J.handleEvents(h).some((m) => m.janus === 'webrtcup')),
          [pubHandles[i], subHandles[i]],
        ),
      ),
    );
    check(ups.flat().every(Boolean), "Janus sent 'webrtcup' on all four handles");

    await a.evaluate(([h, r]) => J.request(h, { request: 'destroy', room: r }), [pubHandles[0], room]);
  } catch (e) {
    check(false, `exception: ${e.message}`);
  } finally {
    if (opts.verbose) {
      for (let i = 0; i < pages.length; i++) {
        const trace = await pages[i].evaluate(() => J.trace).catch(() => []);
        console.log(`----- ${names[i]}: Janus API messages`);
        for (const line of trace) console.log(line);
      }
    }
    await Promise.all(pages.map((p) => p.evaluate(() => J.close()).catch(() => {})));
    clearTimeout(hard);
    await browser.close();
    server.close();
  }
  console.log(failures ? `janus check FAILED (${failures})` : 'janus check passed');
  process.exit(failures ? 1 : 0);
}

main();
