// Two workers: two rooms land on different workers (the admin API says
// where), both carry media at once, and a STUN binding request from an
// address that never signaled gets no answer (it is only counted).
// Run: node workers.mjs <path to conclave>

import { createHmac, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { crc32 } from './stun.mjs';
import { allPairs, expectMedia, roomName, runTest, sleep, VIDEO } from './harness.mjs';

/** A well-formed RFC 8489 binding request with USERNAME, MI and FINGERPRINT. */
function bindingRequest(username, password) {
  const attrs = [];
  const attr = (type, value) => {
    const pad = (4 - (value.length % 4)) % 4;
    const a = Buffer.alloc(4 + value.length + pad);
    a.writeUInt16BE(type, 0);
    a.writeUInt16BE(value.length, 2);
    value.copy(a, 4);
    return a;
  };
  attrs.push(attr(0x0006, Buffer.from(username)));
  attrs.push(attr(0x0024, Buffer.from([0x6e, 0x7f, 0x1e, 0xff])));
  const header = Buffer.alloc(20);
  header.writeUInt16BE(0x0001, 0);
  header.writeUInt32BE(0x2112a442, 4);
  randomBytes(12).copy(header, 8);
  let body = Buffer.concat(attrs);
  header.writeUInt16BE(body.length + 24, 2);
  const mac = createHmac('sha1', password).update(Buffer.concat([header, body])).digest();
  body = Buffer.concat([body, attr(0x0008, mac)]);
  header.writeUInt16BE(body.length + 8, 2);
  const fp = (crc32(Buffer.concat([header, body])) ^ 0x5354554e) >>> 0;
  const fpv = Buffer.alloc(4);
  fpv.writeUInt32BE(fp, 0);
  return Buffer.concat([header, body, attr(0x8028, fpv)]);
}

function metric(text, name, label) {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${label}}`) || (!label && l.startsWith(`${name} `)));
  return line ? Number(line.split(' ').pop()) : NaN;
}

runTest('workers', async (t) => {
  const node = await t.startNode({ extraArgs: ['--node.workers=2'] });
  const browser = await t.launchBrowser();
  const rooms = [roomName('w-one'), roomName('w-two')];
  const pages = [];
  for (const [i, name] of ['alice', 'bob', 'carol', 'dave'].entries()) {
    const p = await t.openPage(browser, node, name);
    const room = rooms[i < 2 ? 0 : 1];
    const r = await p.join({ room, token: t.token({ room, name }), video: VIDEO });
    if (!t.check(r.ok, `${name} joins ${room}`, r)) return;
    pages.push(p);
  }
  const listed = await node.admin('/rooms');
  const workers = rooms.map((name) => listed.rooms.find((r) => r.name === name)?.worker);
  t.check(listed.workers === 2, 'the admin API reports two workers', listed);
  t.check(workers[0] !== undefined && workers[1] !== undefined && workers[0] !== workers[1],
    'the two rooms live on different workers', { workers });
  await expectMedia(t, [
    ...allPairs(pages.slice(0, 2), [['video', 'camera']]),
    ...allPairs(pages.slice(2), [['video', 'camera']]),
  ]);

  // A check from nowhere: unknown ufrag, so no answer on either worker.
  const sock = dgram.createSocket('udp4');
  const answers = [];
  sock.on('message', (m) => answers.push(m));
  await new Promise((r) => sock.bind(0, '127.0.0.1', r));
  const before = metric(await node.admin('/metrics'), 'conclave_dropped_datagrams_total', 'reason="stun_unknown_ufrag"');
  for (const port of [node.mediaBase, node.mediaBase + 1])
    sock.send(bindingRequest('nosuchufrag:peer', 'not-the-password-at-all'), port, '127.0.0.1');
  await t.poll('both unknown checks are dropped and counted', async () => {
    const now = metric(await node.admin('/metrics'), 'conclave_dropped_datagrams_total', 'reason="stun_unknown_ufrag"');
    return { ok: now === before + 2, before, now };
  }, { timeoutMs: 10000 });
  // Absence can only be shown by waiting: the node answers within a batch
  // (microseconds); half a second of silence is far beyond that.
  await sleep(500);
  t.check(answers.length === 0, 'no answer came back to the unknown address', { answers: answers.length });
  sock.close();
});
