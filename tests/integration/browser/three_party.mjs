// Three pages join one room; each receives every other's audio and video;
// then one shares a (canvas) screen and the other two receive it.
// Run: node three_party.mjs <path to conclave>

import { allPairs, expectMedia, roomName, runTest, VIDEO } from './harness.mjs';

runTest('three_party', async (t) => {
  const node = await t.startNode();
  const browser = await t.launchBrowser();
  const room = roomName('three');
  const pages = [];
  for (const name of ['alice', 'bob', 'carol']) pages.push(await t.openPage(browser, node, name));

  for (const p of pages) {
    const r = await p.join({ room, token: t.token({ room, name: p.label }), video: VIDEO });
    if (!t.check(r.ok, `${p.label} joins ${room} and publishes camera + microphone`, r)) return;
  }

  await t.poll('every page lists the two others by name', async () => {
    const seen = await Promise.all(pages.map(async (p) => {
      const s = await p.stats();
      return pages.filter((o) => o !== p).every((o) =>
        s.participants.some((x) => x.id === o.participant && x.name === o.label));
    }));
    return { ok: seen.every(Boolean), seen };
  });

  if (!await expectMedia(t, allPairs(pages), { timeoutMs: 60000 })) return;

  const [alice, bob, carol] = pages;
  const r = await alice.publishScreen({ canvas: true });
  t.check(r.ok, 'alice publishes a screen track (canvas)', r);
  await expectMedia(t, [bob, carol].map((rx) => ({ rx, tx: alice, kind: 'video', source: 'screen' })),
    { timeoutMs: 45000 });

  for (const rx of [bob, carol]) {
    const n = await rx.page.locator('#remote .tile .label', { hasText: 'alice (screen)' }).count();
    t.check(n === 1, `${rx.label}'s page shows a tile labelled "alice (screen)"`, { tiles: n });
  }
  for (const p of pages) {
    const s = await p.stats();
    t.check(s.errors.length === 0, `${p.label} received no error`, s.errors);
  }
});
