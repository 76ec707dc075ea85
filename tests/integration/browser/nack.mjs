// Loss between the node and a subscriber: a UDP relay in the middle drops
// one in ten RTP packets going to the browser. The browser NACKs, the node
// answers from its retransmission cache on the RTX stream it offered
// (RFC 4588), and the video keeps decoding.
// Run: node nack.mjs <path to conclave>

import dgram from 'node:dgram';
import { expectMedia, findRemote, roomName, runTest, VIDEO } from './harness.mjs';

/*
 * Listens on relayIp:port and forwards to 127.0.0.1:port; replies come back
 * through the same client mapping. Every tenth RTP/RTCP-class datagram
 * towards the client (first byte 128..191, second byte not an RTCP type)
 * is dropped, as a lossy link would.
 */
async function lossyRelay(relayIp, port) {
  const front = dgram.createSocket('udp4');
  const backs = new Map();
  const stats = { dropped: 0, forwarded: 0 };
  let n = 0;
  front.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    let back = backs.get(key);
    if (!back) {
      back = dgram.createSocket('udp4');
      back.on('message', (reply) => {
        const rtp = reply[0] >= 128 && reply[0] <= 191 && !(reply[1] >= 192 && reply[1] <= 223);
        if (rtp && ++n % 10 === 0) {
          stats.dropped++;
          return;
        }
        stats.forwarded++;
        front.send(reply, rinfo.port, rinfo.address);
      });
      back.bind(0, '127.0.0.1');
      backs.set(key, back);
    }
    back.send(msg, port, '127.0.0.1');
  });
  await new Promise((r) => front.bind(port, relayIp, r));
  return { stats, close: () => { front.close(); for (const b of backs.values()) b.close(); } };
}

function metric(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ').pop()) : NaN;
}

runTest('nack', async (t) => {
  // The node binds 127.0.0.1 and announces 127.0.0.2, where the relay is.
  const node = await t.startNode({ extraArgs: ['--node.workers=1', '--media.announce_address=127.0.0.2'] });
  const relay = await lossyRelay('127.0.0.2', node.mediaBase);
  const browser = await t.launchBrowser();
  const room = roomName('nack');
  const pages = [];
  for (const name of ['alice', 'bob']) {
    const p = await t.openPage(browser, node, name);
    const r = await p.join({ room, token: t.token({ room, name }), video: VIDEO });
    if (!t.check(r.ok, `${name} joins through the lossy relay`, r)) return;
    pages.push(p);
  }
  const [alice, bob] = pages;
  await expectMedia(t, [{ rx: bob, tx: alice, kind: 'video', source: 'camera' }], { timeoutMs: 60000 });
  await t.poll('bob NACKs lost video and receives retransmissions on RTX', async () => {
    const r = findRemote(await bob.stats(), alice, 'video', 'camera');
    const sent = metric(await node.admin('/metrics'), 'conclave_retransmitted_total');
    return {
      ok: r && r.nackCount > 0 && r.retransmittedPacketsReceived > 0 && sent > 0,
      nackCount: r?.nackCount, retransmitted: r?.retransmittedPacketsReceived, nodeSent: sent,
      relay: relay.stats,
    };
  }, { timeoutMs: 30000 });
  await expectMedia(t, [{ rx: bob, tx: alice, kind: 'video', source: 'camera' }], { timeoutMs: 20000 });
  relay.close();
});
