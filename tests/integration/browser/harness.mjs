// Shared harness of the browser integration tests.
//
// runTest(name, body) parses argv (the conclave binary), gives body a
// TestContext that starts the node on free ports, launches headless Chromium
// (playwright-core over CDP, our own process so we can always kill it),
// opens pages of the demo and records checks. Whatever happens (failure,
// exception, hard timeout, SIGTERM from meson) the browsers and the node are
// killed before exit. Prints one line per check and "N passed, N failed".

import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const WEB_ROOT = process.env.CONCLAVE_WEB_ROOT || join(HERE, '..', '..', '..', 'web');
export const CHROMIUM = process.env.CONCLAVE_CHROMIUM || '/usr/bin/chromium';
const VERBOSE = !!process.env.CONCLAVE_TEST_VERBOSE;

export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
];

/** Loads playwright-core, or exits 77 (meson: skipped) when not installed. */
async function loadPlaywright() {
  try {
    return (await import('playwright-core')).chromium;
  } catch {
    const msg = `playwright-core is not installed: run npm ci --prefix ${HERE}`;
    if (process.env.CONCLAVE_REQUIRE_BROWSER) {
      console.error(`FAIL ${msg}`);
      process.exit(1);
    }
    console.error(`SKIP ${msg}`);
    process.exit(77);
  }
}

// ------------------------------------------------------------------ tokens

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** An HS256 JWT (RFC 7519) of claims; header overrides the JOSE header. */
export function signJwt(secret, claims, header = { alg: 'HS256', typ: 'JWT' }) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  if (header.alg === 'none') return `${input}.`;
  const sig = createHmac('sha256', secret).update(input).digest();
  return `${input}.${b64url(sig)}`;
}

/** Checks an HS256 JWT; returns its claims or null. (Self-test and mock.) */
export function verifyJwt(secret, token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) return null;
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
  } catch {
    return null;
  }
  if (header.alg !== 'HS256') return null;
  const want = createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
  const got = Buffer.from(parts[2], 'base64url');
  if (got.length !== want.length || !want.equals(got)) return null;
  return claims;
}

// ------------------------------------------------------------------- ports

/** A TCP port free on 127.0.0.1 right now. */
export function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function udpFree(port) {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base port B with UDP B .. B+count-1 free (media workers use base+i). */
export async function freeUdpBase(count = 8) {
  for (let tries = 0; tries < 200; tries++) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await udpFree(base + i);
    if (ok) return base;
  }
  throw new Error('no free UDP port range');
}

// --------------------------------------------------------------- processes

function groupAlive(pid) {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pid, sig) {
  try {
    process.kill(-pid, sig);
  } catch {
    // already gone
  }
}

/**
 * Kills a detached child's whole process group: TERM, KILL after graceMs;
 * then whatever is left of the group (helpers outlive their leader).
 */
async function killGroup(child, graceMs) {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    signalGroup(child.pid, 'SIGTERM');
    const timer = new Promise((resolve) => setTimeout(resolve, graceMs, 'timeout'));
    if ((await Promise.race([exited, timer])) === 'timeout') {
      signalGroup(child.pid, 'SIGKILL');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    }
  }
  for (let i = 0; i < 20 && groupAlive(child.pid); i++) {
    signalGroup(child.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function killGroupSync(child) {
  signalGroup(child.pid, 'SIGKILL');
}

/** Keeps the last lines a process printed. */
class LineLog {
  constructor(prefix, max = 200) {
    this.prefix = prefix;
    this.max = max;
    this.lines = [];
    this.partial = { stdout: '', stderr: '' };
    this.listeners = [];
  }

  feed(stream, chunk) {
    const text = this.partial[stream] + chunk.toString();
    const lines = text.split('\n');
    this.partial[stream] = lines.pop();
    for (const line of lines) this.add(line);
  }

  add(line) {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
    if (VERBOSE) console.log(`  ${this.prefix}| ${line}`);
    for (const f of this.listeners) f(line);
  }

  dump() {
    for (const line of this.lines) console.log(`  ${this.prefix}| ${line}`);
  }
}

// --------------------------------------------------------------- the node

export class Node {
  /**
   * Starts the node (a .mjs path runs under node: the mock) and waits for
   * "conclave: listening on http://127.0.0.1:PORT/" on its stdout.
   */
  static async start(binary, { secret, extraArgs = [], timeoutMs = 20000, registry = [] } = {}) {
    const node = new Node();
    node.secret = secret;
    node.port = await freeTcpPort();
    node.adminPort = await freeTcpPort();
    node.mediaBase = await freeUdpBase();
    const args = [
      `--listen.port=${node.port}`,
      `--admin.port=${node.adminPort}`,
      `--media.port_base=${node.mediaBase}`,
      `--token.secret=${secret}`,
      '--dev',
      // Media stays on loopback (the node otherwise announces the first
      // non-loopback address), and the page under test is this tree's web/.
      '--media.address=127.0.0.1',
      '--media.announce_address=127.0.0.1',
      `--web.root=${WEB_ROOT}`,
      ...extraArgs,
    ];
    const [cmd, argv] = binary.endsWith('.mjs') ? [process.execPath, [binary, ...args]] : [binary, args];
    node.log = new LineLog('node');
    node.child = spawn(cmd, argv, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    registry.push(node); // killed at cleanup even if it never listens
    node.child.stdout.on('data', (d) => node.log.feed('stdout', d));
    node.child.stderr.on('data', (d) => node.log.feed('stderr', d));
    node.url = await node.waitListening(binary, timeoutMs).catch(async (e) => {
      await killGroup(node.child, 2000);
      throw e;
    });
    node.child.once('exit', (code, sig) => {
      node.exit = code ?? sig;
    });
    return node;
  }

  waitListening(binary, timeoutMs) {
    const node = this;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "listening" line within ${timeoutMs} ms`)), timeoutMs);
      node.log.listeners.push((line) => {
        const m = /conclave: listening on (http:\/\/\S+?)\/?$/.exec(line.trim());
        if (m) {
          clearTimeout(timer);
          resolve(`${m[1]}/`);
        }
      });
      node.child.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot start ${binary}: ${e.message}`));
      });
      node.child.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`the node exited (${code ?? sig}) before listening`));
      });
    });
  }

  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** GET on the admin API; JSON when it parses, else text. */
  async admin(path) {
    const r = await fetch(`http://127.0.0.1:${this.adminPort}${path}`);
    const text = await r.text();
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  /** SIGTERM (the node drains), KILL after graceMs. */
  async stop(graceMs = 8000) {
    this.stopped = true;
    await killGroup(this.child, graceMs);
  }
}

/**
 * How many participants the admin /rooms answer lists for room. Accepts
 * [{name|room|id, participants: n | [...]}], {rooms: [...]}, or
 * {room: {...}}; a room that is not listed counts 0.
 */
export function roomParticipantCount(rooms, room) {
  const count = (r) => {
    const p = r.participants ?? r.participant_count ?? r.participantCount;
    return Array.isArray(p) ? p.length : Number(p ?? 0);
  };
  const list = Array.isArray(rooms) ? rooms : Array.isArray(rooms?.rooms) ? rooms.rooms : null;
  if (list) {
    const r = list.find((x) => x && (x.name === room || x.room === room || x.id === room));
    return r ? count(r) : 0;
  }
  if (rooms && typeof rooms === 'object' && rooms[room]) return count(rooms[room]);
  return 0;
}

// ------------------------------------------------------------- the browser

export class Browser {
  /** Chromium as our own detached process, driven over CDP. */
  static async launch(chromium, log, registry = []) {
    const b = new Browser();
    b.dir = mkdtempSync(join(tmpdir(), 'conclave-chromium-'));
    b.log = new LineLog('chromium', 50);
    b.child = spawn(CHROMIUM, [
      ...CHROMIUM_ARGS,
      `--user-data-dir=${b.dir}`,
      '--remote-debugging-port=0',
      // A page fulfilled by the harness has no address space: let it reach
      // the node on loopback (debugging aid only, see SERVE_WEB).
      ...(SERVE_WEB ? ['--disable-features=LocalNetworkAccessChecks'] : []),
      'about:blank',
    ], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    registry.push(b); // killed at cleanup even if CDP never connects
    b.child.stderr.on('data', (d) => b.log.feed('stderr', d));
    const ws = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('chromium gave no DevTools endpoint')), 30000);
      b.log.listeners.push((line) => {
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      b.child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`chromium exited (${code}) at start`));
      });
    });
    b.browser = await chromium.connectOverCDP(ws, { timeout: 30000 });
    b.context = b.browser.contexts()[0];
    b.pages = [];
    log(`chromium started (pid ${b.child.pid})`);
    return b;
  }

  async close() {
    await this.browser?.close().catch(() => {});
    this.browser = null;
    await killGroup(this.child, 3000);
    rmSync(this.dir, { recursive: true, force: true });
  }

  closeSync() {
    killGroupSync(this.child);
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      // best effort at exit
    }
  }
}

/** A tab of the demo page, with the test hook's functions as methods. */
export class Page {
  constructor(t, page, label) {
    this.t = t;
    this.page = page;
    this.label = label;
    this.participant = null;
  }

  call(fn, arg) {
    return this.page.evaluate(([f, a]) => window.conclaveTest[f](a), [fn, arg]);
  }

  async join(opts) {
    const r = await this.call('join', { name: this.label, ...opts });
    if (r.ok) this.participant = r.participant;
    return r;
  }

  publishScreen(opts = { canvas: true }) {
    return this.call('publishScreen', opts);
  }

  unpublishScreen() {
    return this.call('unpublishScreen');
  }

  leave() {
    return this.call('leave');
  }

  request(msg) {
    return this.call('request', msg);
  }

  stats() {
    return this.call('stats');
  }

  close() {
    return this.page.close();
  }
}

// CONCLAVE_TEST_SERVE_WEB=1: the harness answers GETs of web/ files itself
// (the WebSocket and /dev/token still go to the node). A debugging aid for
// a node whose static file serving is broken; off by default.
const SERVE_WEB = !!process.env.CONCLAVE_TEST_SERVE_WEB;
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

async function serveWebFromDisk(page, base) {
  await page.route(`${base}**`, async (route) => {
    const path = new URL(route.request().url()).pathname;
    const file = path === '/' ? 'index.html' : path.slice(1);
    if (!/^[a-z_]+\.(html|js|css)$/.test(file)) return route.continue();
    try {
      const body = readFileSync(join(WEB_ROOT, file));
      return route.fulfill({ status: 200, contentType: TYPES[extname(file)], body });
    } catch {
      return route.continue();
    }
  });
}

// ------------------------------------------------------------ test context

export class TestContext {
  constructor(name, binary, chromium) {
    this.name = name;
    this.binary = binary;
    this.chromium = chromium;
    this.secret = randomBytes(24).toString('hex');
    this.nodes = [];
    this.browsers = [];
    this.passed = 0;
    this.failed = 0;
    this.pageErrors = [];
    this.t0 = Date.now();
  }

  info(msg) {
    console.log(`[${((Date.now() - this.t0) / 1000).toFixed(1)}s] ${msg}`);
  }

  /** Records one check; details are printed when it fails. */
  check(ok, what, details) {
    if (ok) {
      this.passed++;
      console.log(`ok   ${what}`);
    } else {
      this.failed++;
      console.log(`FAIL ${what}`);
      if (details !== undefined) console.log(`     ${JSON.stringify(details).slice(0, 2000)}`);
    }
    return !!ok;
  }

  /**
   * Polls fn until it returns {ok: true} (or a truthy non-object) or the
   * deadline passes; records one check either way. Returns the last value.
   */
  async poll(what, fn, { timeoutMs = 30000, intervalMs = 500 } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
      try {
        last = await fn();
      } catch (e) {
        last = { ok: false, error: String(e?.message ?? e) };
      }
      const ok = last && typeof last === 'object' ? last.ok : last;
      if (ok || Date.now() >= deadline) {
        this.check(ok, `${what}${ok ? '' : ` (not within ${timeoutMs} ms)`}`, ok ? undefined : last);
        return last;
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }

  /** A token for room with the test's secret; over overrides claims. */
  token({ room, name = 'someone', ttlSec = 600, secret = this.secret, ...over } = {}) {
    const now = Math.floor(Date.now() / 1000);
    return signJwt(secret, { sub: `user-${name}`, room, iat: now, exp: now + ttlSec, ...over });
  }

  async startNode(opts = {}) {
    this.info(`starting ${this.binary}`);
    const node = await Node.start(this.binary, { secret: this.secret, registry: this.nodes, ...opts }).catch((e) => {
      this.check(false, `node starts and prints its listening line: ${e.message}`);
      e.reported = true;
      throw e;
    });
    this.info(`node listening at ${node.url} (admin ${node.adminPort}, media ${node.mediaBase})`);
    return node;
  }

  async launchBrowser() {
    return Browser.launch(this.chromium, (m) => this.info(m), this.browsers);
  }

  /** Opens the demo page of node in browser b and waits for its hook. */
  async openPage(b, node, label) {
    const page = await b.context.newPage();
    page.on('pageerror', (e) => {
      this.pageErrors.push(`${label}: ${e.message}`);
      this.info(`${label} page error: ${e.message}`);
    });
    page.on('console', (m) => {
      if (m.type() === 'error' || VERBOSE) this.info(`${label} console.${m.type()}: ${m.text()}`);
    });
    if (SERVE_WEB) await serveWebFromDisk(page, node.url);
    await page.goto(node.url);
    await page.waitForFunction(() => !!window.conclaveTest, null, { timeout: 10000 });
    return new Page(this, page, label);
  }

  async cleanup() {
    if (this.cleaning) return this.cleaning;
    this.cleaning = (async () => {
      for (const b of this.browsers) await b.close();
      for (const n of this.nodes) {
        await n.stop();
        this.info(`node stopped (exit ${n.exit})`);
      }
    })();
    return this.cleaning;
  }

  cleanupSync() {
    for (const b of this.browsers) b.closeSync();
    for (const n of this.nodes) killGroupSync(n.child);
  }

  dumpLogs() {
    for (const n of this.nodes) {
      console.log('--- last lines of the node:');
      n.log.dump();
    }
  }
}

/**
 * Runs body(t) as the whole test: `node <script> <conclave binary>`.
 * Exit status 0 when every check passed, 1 otherwise, 77 when skipped.
 */
export async function runTest(name, body, { timeoutMs = 120000 } = {}) {
  const binary = process.argv[2];
  if (!binary) {
    console.error(`usage: node ${process.argv[1]} <path to conclave>`);
    process.exit(2);
  }
  if (!existsSync(binary)) {
    console.error(`FAIL ${binary} does not exist`);
    process.exit(1);
  }
  const chromium = await loadPlaywright();
  if (!existsSync(CHROMIUM)) {
    console.error(`FAIL ${CHROMIUM} does not exist (apt-get install chromium)`);
    process.exit(1);
  }
  timeoutMs = Number(process.env.CONCLAVE_TEST_TIMEOUT_MS) || timeoutMs;
  const t = new TestContext(name, binary, chromium);
  let finished = false;
  const finish = async (why) => {
    if (finished) return;
    finished = true;
    if (why) t.check(false, why);
    for (const n of t.nodes.filter((x) => !x.stopped && !x.expectExit))
      t.check(n.running, `the node is still running at the end (not crashed)`, { exit: n.child.exitCode ?? n.child.signalCode });
    await t.cleanup().catch((e) => console.log(`cleanup: ${e.message}`));
    // SIGTERM drains and exits 0; under ASan a leak makes the exit non-zero.
    for (const n of t.nodes.filter((x) => !x.expectExit))
      t.check(n.exit === 0, 'the node exits 0 on SIGTERM (no crash, no leak under ASan)', { exit: n.exit });
    t.check(t.pageErrors.length === 0, 'no uncaught JavaScript error in any page', t.pageErrors);
    if (t.failed) t.dumpLogs();
    console.log(`${name}: ${t.passed} passed, ${t.failed} failed`);
    process.exit(t.failed ? 1 : 0);
  };
  process.on('exit', () => t.cleanupSync());
  for (const sig of ['SIGINT', 'SIGTERM'])
    process.on(sig, () => finish(`interrupted by ${sig}`));
  const hard = setTimeout(() => finish(`hard timeout of ${timeoutMs / 1000} s`), timeoutMs);
  t.info(`${name}: start`);
  try {
    await body(t);
  } catch (e) {
    // After an interrupt or timeout the body fails on closed pages: noise.
    if (!finished && !e?.reported) t.check(false, `test body threw: ${e?.stack ?? e}`);
  }
  clearTimeout(hard);
  await finish();
}

// --------------------------------------------------------------- helpers

/** Counters of stats().remote keyed "participant/kind/source". */
export function remoteIndex(stats) {
  const m = new Map();
  for (const r of stats.remote) m.set(`${r.participant}/${r.kind}/${r.source}`, r);
  return m;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A room name unique to this run. */
export const roomName = (prefix) => `${prefix}-${randomBytes(4).toString('hex')}`;

/** The remote track of tx (kind, source) in rx's stats, or undefined. */
export function findRemote(stats, tx, kind, source) {
  return stats.remote.find((r) => r.participant === tx.participant && r.kind === kind && r.source === source);
}

/**
 * Waits until, for every pair {rx, tx, kind, source}, page rx receives that
 * track of page tx: packetsReceived > 0 and growing, and for video
 * framesDecoded > 0 and growing. Prints one check per pair.
 */
export async function expectMedia(t, pairs, { timeoutMs = 60000, intervalMs = 500 } = {}) {
  const state = pairs.map(() => ({ first: null, last: null, grown: false, rxStats: null }));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const snaps = new Map();
    for (const rx of new Set(pairs.map((p) => p.rx))) snaps.set(rx, await rx.stats());
    pairs.forEach((p, i) => {
      const s = state[i];
      const r = findRemote(snaps.get(p.rx), p.tx, p.kind, p.source);
      s.last = r ?? null;
      s.rxStats = snaps.get(p.rx);
      const video = p.kind === 'video';
      if (!r || r.packetsReceived === 0 || (video && r.framesDecoded === 0)) return;
      if (!s.first) s.first = r;
      else if (r.packetsReceived > s.first.packetsReceived && (!video || r.framesDecoded > s.first.framesDecoded))
        s.grown = true;
    });
    // A page whose session ended will not receive anything any more.
    const hopeless = state.some((s, i) => !s.grown && !snaps.get(pairs[i].rx).joined);
    if (state.every((s) => s.grown) || hopeless || Date.now() >= deadline) break;
    await sleep(intervalMs);
  }
  pairs.forEach((p, i) => {
    const { grown, last: r, first, rxStats } = state[i];
    const counts = r
      ? `${r.packetsReceived} packets, ${r.bytesReceived} bytes${p.kind === 'video' ? `, ${r.framesDecoded} frames decoded` : ''}`
      : 'no such track';
    const details = grown ? undefined : {
      first, last: r, connections: rxStats?.connections, trackEvents: rxStats?.trackEvents,
      tracks: rxStats?.tracks, remote: rxStats?.remote, errors: rxStats?.errors,
    };
    t.check(grown, `${p.rx.label} receives ${p.tx.label}'s ${p.kind} (${p.source}): ${counts}${grown ? ', growing' : ''}`, details);
  });
  return state.every((s) => s.grown);
}

/** Every ordered pair of pages, for each [kind, source]. */
export function allPairs(pages, media = [['audio', 'microphone'], ['video', 'camera']]) {
  const pairs = [];
  for (const rx of pages)
    for (const tx of pages)
      if (rx !== tx) for (const [kind, source] of media) pairs.push({ rx, tx, kind, source });
  return pairs;
}

/** Small camera frames: three pages encode and decode on two cores. */
export const VIDEO = { width: 320, height: 240, frameRate: 15 };
