// Bad input at a running node: random and malformed UDP datagrams of every
// RFC 7983 class, an oversized datagram, invalid, oversized and flooding
// WebSocket messages. Each is dropped and counted in /metrics, and the room
// in progress keeps its media flowing.
// Run: node robustness.mjs <path to conclave>

import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { allPairs, expectMedia, roomName, runTest, VIDEO } from './harness.mjs';

function metrics(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}
const drop = (reason) => `conclave_dropped_datagrams_total{reason="${reason}"}`;

/** Datagrams that each look like one demux class and are garbage inside. */
function garbage() {
  const out = [];
  const withFirst = (bytes, len) => Buffer.concat([Buffer.from(bytes), randomBytes(len)]);
  for (let i = 0; i < 50; i++) {
    out.push(withFirst([i % 4], 19 + (i % 40)));            // STUN class, broken
    out.push(withFirst([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42], 12)); // STUN header, no USERNAME
    out.push(withFirst([0x16, 0xfe, 0xfd], 40 + i));         // DTLS record header
    out.push(withFirst([0x80, 0x60 + (i % 32)], 100 + i));   // RTP
    out.push(withFirst([0x80, 0xc8], 30));                   // RTCP SR
    out.push(withFirst([0x42], 30));                         // no class at all
    out.push(randomBytes(1 + (i % 200)));                    // anything
  }
  out.push(Buffer.alloc(0));
  out.push(randomBytes(4000)); // over the largest datagram the node takes
  return out;
}

runTest('robustness', async (t) => {
  const node = await t.startNode({ extraArgs: ['--node.workers=1', '--ws.join_timeout_ms=3000'] });
  const browser = await t.launchBrowser();
  const room = roomName('robust');
  const pages = [];
  for (const name of ['alice', 'bob']) {
    const p = await t.openPage(browser, node, name);
    const r = await p.join({ room, token: t.token({ room, name }), video: VIDEO });
    if (!t.check(r.ok, `${name} joins`, r)) return;
    pages.push(p);
  }
  if (!await expectMedia(t, allPairs(pages))) return;
  const before = metrics(await node.admin('/metrics'));

  // UDP: every kind of garbage, from an address that never signaled.
  const sock = dgram.createSocket('udp4');
  await new Promise((r) => sock.bind(0, '127.0.0.1', r));
  const sent = garbage();
  for (const d of sent) await new Promise((r) => sock.send(d, node.mediaBase, '127.0.0.1', r));
  sock.close();

  // WebSocket: not JSON, not an object, unknown type, oversized, a flood.
  const ws = await pages[0].page.evaluate(async (url) => {
    const sock = new WebSocket(url.replace('http', 'ws') + 'ws', 'conclave.v1');
    await new Promise((res, rej) => { sock.onopen = res; sock.onerror = rej; });
    const replies = [];
    sock.onmessage = (e) => replies.push(JSON.parse(e.data));
    const closed = new Promise((res) => { sock.onclose = (e) => res(e.code); });
    sock.send('not json');
    sock.send('[1,2,3]');
    sock.send('{"type":"no_such_type"}');
    sock.send('{"type":"join","token":7,"room":"x"}');
    for (let i = 0; i < 150; i++) sock.send('{"type":"ping","id":' + i + '}');
    await new Promise((r) => setTimeout(r, 200));
    sock.send('{"type":"ping","pad":"' + 'x'.repeat(70 * 1024) + '"}');
    const code = await Promise.race([closed, new Promise((r) => setTimeout(r, 5000, 'open'))]);
    return { replies: replies.map((r) => r.code || r.type), code };
  }, node.url);
  t.check(ws.replies.includes('bad_message'), 'invalid messages get error bad_message', ws.replies.slice(0, 6));
  t.check(ws.replies.includes('rate_limited'), 'a message flood gets error rate_limited', { n: ws.replies.length });
  // The node closes with 1009; the browser may report 1006 when the close
  // frame races its own unfinished upload. Either way the socket is gone.
  t.check(ws.code === 1009 || ws.code === 1006, 'an oversized frame closes the socket', { code: ws.code });

  await t.poll('every bad datagram and message is counted in /metrics', async () => {
    const after = metrics(await node.admin('/metrics'));
    const d = (k) => (after.get(k) ?? 0) - (before.get(k) ?? 0);
    const udp = ['stun_malformed', 'stun_unknown_ufrag', 'unknown_address', 'demux_other', 'truncated']
      .reduce((sum, r) => sum + d(drop(r)), 0);
    const res = {
      ok: udp === sent.length && d(drop('truncated')) >= 1 && d(drop('unknown_address')) >= 100 &&
        d('conclave_ws_bad_messages_total') >= 4 && d('conclave_ws_rate_limited_total') >= 1 &&
        d('conclave_ws_too_big_total') >= 1,
      sent: sent.length, udp,
      truncated: d(drop('truncated')), unknown_address: d(drop('unknown_address')),
      demux_other: d(drop('demux_other')), stun: d(drop('stun_malformed')) + d(drop('stun_unknown_ufrag')),
      bad: d('conclave_ws_bad_messages_total'), rate: d('conclave_ws_rate_limited_total'), big: d('conclave_ws_too_big_total'),
    };
    return res;
  }, { timeoutMs: 10000 });

  // A socket that never joins is closed at the join deadline (1008).
  const idle = await pages[1].page.evaluate(async (url) => {
    const sock = new WebSocket(url.replace('http', 'ws') + 'ws', 'conclave.v1');
    const opened = Date.now();
    const code = await new Promise((res) => {
      sock.onclose = (e) => res(e.code);
      setTimeout(res, 10000, 'still open');
    });
    return { code, afterMs: Date.now() - opened };
  }, node.url);
  t.check(idle.code === 1008 && idle.afterMs >= 2500, 'a socket that never joins is closed after ws.join_timeout_ms', idle);

  t.check(node.running, 'the node survived');
  await expectMedia(t, allPairs(pages), { timeoutMs: 20000 });
});
