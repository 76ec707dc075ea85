// Loss between the node and a subscriber: a UDP relay in the middle drops
// one in ten RTP packets going to the browser. The browser NACKs, the node
// answers from its retransmission cache on the RTX stream it offered
// (RFC 4588), and the video keeps decoding.
// Run: node nack.mjs <path to conclave>

import { expectMedia, findRemote, roomName, runTest, VIDEO } from './harness.mjs';
import { lossyRelay } from './relay.mjs';

function metric(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ').pop()) : NaN;
}

runTest('nack', async (t) => {
  // The node binds 127.0.0.1 and announces 127.0.0.2, where the relay is.
  const node = await t.startNode({ extraArgs: ['--node.workers=1', '--media.announce_address=127.0.0.2'] });
  const relay = await lossyRelay('127.0.0.2', node.mediaBase, { toClient: 10 });
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
