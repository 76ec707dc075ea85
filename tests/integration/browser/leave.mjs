// Three pages join; one leaves with leave(), another's tab is closed; the
// remaining page gets participant_left and track_removed and its stats stop
// listing their tracks; the admin API counts the participants.
// Run: node leave.mjs <path to conclave>

import { allPairs, expectMedia, roomName, roomParticipantCount, runTest, VIDEO } from './harness.mjs';

async function expectGone(t, rx, gone, goneTracks, how) {
  await t.poll(`${rx.label} sees ${gone.label} leave (${how}): participant_left, track_removed, no stats`, async () => {
    const s = await rx.stats();
    const left = s.events.some((e) => e.type === 'participant_left' && e.participant === gone.participant);
    const removed = goneTracks.every((id) => s.events.some((e) => e.type === 'track_removed' && e.track === id));
    const listed = s.participants.some((p) => p.id === gone.participant);
    const tracks = s.tracks.filter((x) => x.participant === gone.participant).length;
    const remote = s.remote.filter((x) => x.participant === gone.participant).length;
    return { ok: left && removed && !listed && tracks === 0 && remote === 0, left, removed, listed, tracks, remote };
  });
  const tiles = await rx.page.locator('#remote .tile .label', { hasText: `${gone.label} (` }).count();
  t.check(tiles === 0, `${rx.label}'s page shows no tile of ${gone.label}`, { tiles });
}

async function expectCount(t, node, room, n) {
  await t.poll(`admin /rooms lists ${n} participant(s) in the room`, async () => {
    const rooms = await node.admin('/rooms');
    const count = roomParticipantCount(rooms, room);
    return { ok: count === n, count, rooms };
  }, { timeoutMs: 15000 });
}

runTest('leave', async (t) => {
  const node = await t.startNode();
  const browser = await t.launchBrowser();
  const room = roomName('leave');
  const pages = [];
  for (const name of ['alice', 'bob', 'carol']) pages.push(await t.openPage(browser, node, name));
  for (const p of pages) {
    const r = await p.join({ room, token: t.token({ room, name: p.label }), video: VIDEO });
    if (!t.check(r.ok, `${p.label} joins and publishes`, r)) return;
  }
  const [alice, bob, carol] = pages;
  if (!await expectMedia(t, allPairs(pages, [['video', 'camera']]), { timeoutMs: 60000 })) return;
  await expectCount(t, node, room, 3);

  const tracksOf = async (rx, tx) => (await rx.stats()).tracks.filter((x) => x.participant === tx.participant).map((x) => x.id);
  const bobTracks = await tracksOf(alice, bob);
  const carolTracks = await tracksOf(alice, carol);
  t.check(bobTracks.length === 2 && carolTracks.length === 2, 'alice knows two tracks each of bob and carol',
    { bobTracks, carolTracks });

  const r = await bob.leave();
  t.check(r.ok, 'bob calls leave()', r);
  await expectGone(t, alice, bob, bobTracks, 'leave()');
  await expectGone(t, carol, bob, bobTracks, 'leave()');
  await expectCount(t, node, room, 2);

  await carol.close();
  t.info('closed carol\'s tab');
  await expectGone(t, alice, carol, carolTracks, 'tab closed');
  await expectCount(t, node, room, 1);

  const s = await alice.stats();
  t.check(s.joined && s.remote.length === 0 && s.participants.length === 0,
    'alice is still joined, alone, with no remote track', { joined: s.joined, remote: s.remote, participants: s.participants });
});
