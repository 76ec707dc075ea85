// SIGTERM drains the node: it refuses new joins with `draining`, tells
// every client (`draining` with a deadline), keeps the room's media
// flowing, and exits 0 as soon as the last participant has left.
// Run: node drain.mjs <path to conclave>

import { allPairs, expectMedia, roomName, runTest, VIDEO } from './harness.mjs';

runTest('drain', async (t) => {
  const node = await t.startNode({ extraArgs: ['--drain.timeout_ms=60000'] });
  const browser = await t.launchBrowser();
  const room = roomName('drain');
  const pages = [];
  for (const name of ['alice', 'bob']) {
    const p = await t.openPage(browser, node, name);
    const r = await p.join({ room, token: t.token({ room, name }), video: VIDEO });
    if (!t.check(r.ok, `${name} joins`, r)) return;
    pages.push(p);
  }
  if (!await expectMedia(t, allPairs(pages, [['video', 'camera']]))) return;
  const late = await t.openPage(browser, node, 'carol');

  node.expectExit = true; // this test checks the exit itself
  const exited = new Promise((resolve) => node.child.once('exit', (code, sig) => resolve(code ?? sig)));
  node.child.kill('SIGTERM');
  await t.poll('both clients are told the node is draining', async () => {
    const told = await Promise.all(pages.map(async (p) =>
      (await p.stats()).events.some((e) => e.type === 'draining' && e.deadline_ms > 0)));
    return { ok: told.every(Boolean), told };
  }, { timeoutMs: 10000 });
  const r = await late.join({ room, token: t.token({ room, name: 'carol' }), video: VIDEO });
  t.check(!r.ok && r.code === 'draining', 'a join while draining is refused with draining', r);
  t.check(node.running, 'the node keeps running while the room is in use');
  await expectMedia(t, allPairs(pages, [['video', 'camera']]), { timeoutMs: 20000 });

  for (const p of pages) await p.leave();
  const code = await Promise.race([exited, new Promise((res) => setTimeout(res, 15000, 'still running'))]);
  t.check(code === 0, 'the node exits 0 once the room is empty, long before its deadline', { code });
});
