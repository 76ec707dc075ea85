// Loss between a publisher and the node: a UDP relay drops one in ten RTP
// packets on their way to the node. The node NACKs the publisher (RFC 4585),
// the publisher retransmits on its RTX stream (RFC 4588), the node turns
// those back into the original packets and forwards them, and the
// subscriber decodes video with (almost) nothing lost.
// Run: node nack_publisher.mjs <path to conclave>

import { expectMedia, findRemote, roomName, runTest, VIDEO } from './harness.mjs';
import { lossyRelay } from './relay.mjs';

function metric(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ').pop()) : NaN;
}

runTest('nack_publisher', async (t) => {
  const node = await t.startNode({ extraArgs: ['--node.workers=1', '--media.announce_address=127.0.0.2'] });
  const relay = await lossyRelay('127.0.0.2', node.mediaBase, { toNode: 10 });
  const browser = await t.launchBrowser();
  const room = roomName('nackpub');
  const pages = [];
  for (const name of ['alice', 'bob']) {
    const p = await t.openPage(browser, node, name);
    const r = await p.join({ room, token: t.token({ room, name }), video: VIDEO });
    if (!t.check(r.ok, `${name} joins through the lossy relay`, r)) return;
    pages.push(p);
  }
  const [alice, bob] = pages;
  await expectMedia(t, [{ rx: bob, tx: alice, kind: 'video', source: 'camera' }], { timeoutMs: 60000 });
  await t.poll('the node NACKs the publisher and recovers packets from its RTX stream', async () => {
    const text = await node.admin('/metrics');
    const nacked = metric(text, 'conclave_nack_sent_total');
    const recovered = metric(text, 'conclave_rtx_recovered_total');
    return { ok: nacked > 0 && recovered > 0, nacked, recovered, relay: relay.stats };
  }, { timeoutMs: 30000 });
  await expectMedia(t, [{ rx: bob, tx: alice, kind: 'video', source: 'camera' }], { timeoutMs: 20000 });
  const r = findRemote(await bob.stats(), alice, 'video', 'camera');
  // One in ten is dropped on the way in; without repair bob would miss
  // about 10 % of alice's video packets. Allow the tail still in flight.
  const lostShare = r.packetsLost / (r.packetsReceived + r.packetsLost);
  t.check(lostShare < 0.04, `bob lost ${(100 * lostShare).toFixed(2)} % of alice's video (10 % dropped before the node)`, r);
  relay.close();
});
