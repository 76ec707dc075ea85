// A stand-in for the conclave binary, for the harness self-test only.
//
// Same command line and "listening" line as the node; serves web/, the dev
// token endpoint, /ws (signaling of docs/protocol.md: join with token
// checks, participants, publish answered with an SDP that names an ICE-lite
// candidate nobody listens on, track events, leave) and the admin /rooms.
// It forwards no media and never sends subscribe_offer: it lets the page,
// the harness and the token checks be exercised before the node exists.

import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signJwt, verifyJwt } from './harness.mjs';

const WEB = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'web');
const opt = Object.fromEntries(process.argv.slice(2).map((a) => {
  const m = /^--([^=]+)(?:=(.*))?$/.exec(a);
  return m ? [m[1], m[2] ?? true] : [a, true];
}));
const secret = opt['token.secret'] || randomBytes(16).toString('hex');
const rooms = new Map(); // name -> Map(participant id -> conn)
const id = () => randomBytes(6).toString('hex');

// ------------------------------------------------------------ WebSocket

function wsAccept(req, socket) {
  const key = req.headers['sec-websocket-key'];
  const protos = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
  if (!key || !protos.includes('conclave.v1')) {
    socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    return;
  }
  const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: conclave.v1\r\n\r\n`);
  const conn = { socket, room: null, participant: null, name: '', tracks: [] };
  conn.send = (msg) => wsWrite(socket, 1, Buffer.from(JSON.stringify(msg)));
  let buf = Buffer.alloc(0);
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const f = wsFrame(buf);
      if (!f) break;
      buf = buf.subarray(f.size);
      if (f.op === 8) {
        wsWrite(socket, 8, Buffer.alloc(0));
        socket.end();
      } else if (f.op === 9) {
        wsWrite(socket, 10, f.data);
      } else if (f.op === 1) {
        onMessage(conn, f.data.toString());
      }
    }
  });
  socket.on('close', () => depart(conn));
  socket.on('error', () => {});
}

function wsFrame(buf) {
  if (buf.length < 2) return null;
  const op = buf[0] & 0x0f;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  const masked = buf[1] & 0x80;
  const mask = masked ? buf.subarray(off, off + 4) : null;
  if (masked) off += 4;
  if (buf.length < off + len) return null;
  const data = Buffer.from(buf.subarray(off, off + len));
  if (mask) for (let i = 0; i < data.length; i++) data[i] ^= mask[i & 3];
  return { op, data, size: off + len };
}

function wsWrite(socket, op, data) {
  const head = data.length < 126 ? Buffer.from([0x80 | op, data.length])
    : Buffer.from([0x80 | op, 126, data.length >> 8, data.length & 0xff]);
  if (!socket.destroyed) socket.write(Buffer.concat([head, data]));
}

// ------------------------------------------------------------ signaling

function members(room) {
  return rooms.get(room) ?? new Map();
}

function broadcast(room, except, msg) {
  for (const c of members(room).values()) if (c !== except) c.send(msg);
}

function depart(conn) {
  if (!conn.participant) return;
  const room = members(conn.room);
  room.delete(conn.participant);
  for (const t of conn.tracks) broadcast(conn.room, conn, { type: 'track_removed', track: t.id });
  broadcast(conn.room, conn, { type: 'participant_left', participant: conn.participant });
  if (room.size === 0) rooms.delete(conn.room);
  conn.participant = null;
}

function tokenError(token, room) {
  if (typeof token !== 'string' || token === '') return 'token_missing';
  const claims = verifyJwt(secret, token);
  if (!claims) return 'token_invalid';
  const now = Date.now() / 1000;
  if (typeof claims.exp !== 'number' || claims.exp + 60 < now) return 'token_expired';
  if (claims.room !== room) return 'token_wrong_room';
  return null;
}

function onMessage(conn, text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    msg = null;
  }
  const reply = (m) => conn.send(Number.isInteger(msg?.id) ? { ...m, id: msg.id } : m);
  const error = (code, message = code) => reply({ type: 'error', code, message });
  if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return error('bad_message');
  if (msg.type === 'ping') return reply({ type: 'pong' });
  if (msg.type === 'join') {
    if (conn.participant) return error('already_joined');
    if (typeof msg.room !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(msg.room)) return error('bad_message');
    const bad = tokenError(msg.token, msg.room);
    if (bad) return error(bad, 'refused');
    conn.participant = id();
    conn.room = msg.room;
    conn.name = String(msg.name ?? '');
    const room = members(msg.room);
    const others = [...room.values()];
    reply({
      type: 'joined', participant: conn.participant, room: msg.room,
      participants: others.map((c) => ({ id: c.participant, name: c.name })),
      tracks: others.flatMap((c) => c.tracks),
    });
    broadcast(msg.room, conn, { type: 'participant_joined', participant: { id: conn.participant, name: conn.name } });
    room.set(conn.participant, conn);
    rooms.set(msg.room, room);
    return undefined;
  }
  if (!conn.participant) return error('not_joined');
  switch (msg.type) {
  case 'publish': {
    if (typeof msg.sdp !== 'string' || !Array.isArray(msg.tracks)) return error('bad_message');
    const kinds = mediaKinds(msg.sdp);
    for (const t of msg.tracks) {
      if (conn.tracks.some((x) => x.mid === t.mid)) continue;
      const track = { id: id(), participant: conn.participant, kind: kinds.get(t.mid) ?? 'video', source: t.source, muted: false, mid: t.mid };
      conn.tracks.push(track);
      broadcast(conn.room, conn, { type: 'track_added', track });
    }
    return reply({ type: 'publish_answer', sdp: answerFor(msg.sdp) });
  }
  case 'unpublish': {
    const i = conn.tracks.findIndex((t) => t.mid === msg.mid);
    if (i >= 0) broadcast(conn.room, conn, { type: 'track_removed', track: conn.tracks.splice(i, 1)[0].id });
    return reply({ type: 'ok' });
  }
  case 'subscribe_answer':
  case 'mute':
    return reply({ type: 'ok' });
  case 'candidate':
    return undefined;
  case 'leave':
    depart(conn);
    wsWrite(conn.socket, 8, Buffer.from([0x03, 0xe8]));
    conn.socket.end();
    return undefined;
  default:
    return error('bad_message');
  }
}

function mediaKinds(sdp) {
  const kinds = new Map();
  let kind = null;
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) kind = line.slice(2).split(' ')[0];
    const m = /^a=mid:(.*)$/.exec(line);
    if (m) kinds.set(m[1], kind);
  }
  return kinds;
}

/** An ICE-lite recvonly answer to offer (nobody behind its candidate). */
function answerFor(offer) {
  const sections = offer.split(/\r?\n(?=m=)/);
  const fp = [...randomBytes(32)].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');
  const mids = [];
  const out = [];
  for (const sec of sections.slice(1)) {
    const lines = sec.split(/\r?\n/).filter(Boolean);
    const mid = (lines.find((l) => l.startsWith('a=mid:')) ?? 'a=mid:0').slice(6);
    const rejected = lines[0].split(' ')[1] === '0';
    if (!rejected) mids.push(mid);
    out.push(lines[0], 'c=IN IP4 127.0.0.1', `a=mid:${mid}`);
    if (rejected) continue;
    out.push('a=ice-ufrag:mock', 'a=ice-pwd:mockmockmockmockmockmock', `a=fingerprint:sha-256 ${fp}`,
      'a=setup:passive', 'a=recvonly', 'a=rtcp-mux',
      `a=candidate:1 1 udp 2130706431 127.0.0.1 ${Number(opt['media.port_base']) || 9} typ host`);
    out.push(...lines.filter((l) => /^a=(rtpmap|fmtp|rtcp-fb|extmap):/.test(l)));
  }
  return ['v=0', `o=- ${Date.now()} 2 IN IP4 127.0.0.1`, 's=-', 't=0 0', 'a=ice-lite',
    `a=group:BUNDLE ${mids.join(' ')}`, ...out, ''].join('\r\n');
}

// ----------------------------------------------------------------- HTTP

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

const http = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/dev/token' && opt.dev) {
    const room = url.searchParams.get('room') ?? '';
    const now = Math.floor(Date.now() / 1000);
    const token = signJwt(secret, { sub: id(), room, iat: now, exp: now + 3600 });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token }));
    return;
  }
  const file = normalize(url.pathname === '/' ? '/index.html' : url.pathname);
  try {
    const body = await readFile(join(WEB, file));
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(body);
  } catch {
    res.writeHead(404).end('not found');
  }
});
http.on('upgrade', (req, socket) => {
  if (new URL(req.url, 'http://x').pathname === '/ws') wsAccept(req, socket);
  else socket.destroy();
});

const admin = createServer((req, res) => {
  if (req.url === '/rooms') {
    const list = [...rooms].map(([name, m]) => ({ name, participants: m.size }));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(list));
  } else if (req.url === '/metrics') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`conclave_rooms ${rooms.size}\n`);
  } else {
    res.writeHead(404).end();
  }
});

const port = Number(opt['listen.port'] ?? 8080);
admin.listen(Number(opt['admin.port'] ?? 8081), '127.0.0.1', () => {
  http.listen(port, '127.0.0.1', () => console.log(`conclave: listening on http://127.0.0.1:${port}/`));
});
process.on('SIGTERM', () => process.exit(0));
