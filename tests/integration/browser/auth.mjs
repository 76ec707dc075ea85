// Join tokens (docs/protocol.md, Tokens and Error codes): a missing, expired,
// wrongly signed or other-room token is refused with its code and the page
// gets no media, while a legitimate pair exchanges media. A token without
// the publish right may subscribe but not publish.
// Run: node auth.mjs <path to conclave>

import { allPairs, expectMedia, roomName, roomParticipantCount, runTest, signJwt, VIDEO } from './harness.mjs';

runTest('auth', async (t) => {
  const node = await t.startNode();
  const browser = await t.launchBrowser();
  const room = roomName('auth');
  const now = Math.floor(Date.now() / 1000);

  const alice = await t.openPage(browser, node, 'alice');
  const bob = await t.openPage(browser, node, 'bob');
  for (const p of [alice, bob]) {
    const r = await p.join({ room, token: t.token({ room, name: p.label }), video: VIDEO });
    if (!t.check(r.ok, `${p.label} joins with a good token`, r)) return;
  }

  // A good token for the room whose payload is swapped after signing.
  const good = t.token({ room, name: 'mallory' }).split('.');
  const otherClaims = Buffer.from(JSON.stringify({ sub: 'x', room, exp: now + 600, rights: ['publish', 'subscribe'], admin: true })).toString('base64url');
  const cases = [
    { what: 'no token', token: null, code: 'token_missing' },
    { what: 'an expired token', token: t.token({ room, iat: now - 7200, exp: now - 3600 }), code: 'token_expired' },
    { what: 'a token signed with another secret', token: t.token({ room, secret: 'not-the-secret' }), code: 'token_invalid' },
    { what: 'a token for another room', token: t.token({ room: `${room}-other` }), code: 'token_wrong_room' },
    { what: 'an unsigned (alg none) token', token: signJwt(t.secret, { sub: 'x', room, exp: now + 600 }, { alg: 'none', typ: 'JWT' }), code: 'token_invalid' },
    { what: 'a token with a tampered payload', token: `${good[0]}.${otherClaims}.${good[2]}`, code: 'token_invalid' },
    { what: 'a token that is not a JWT', token: 'not-a-jwt', code: 'token_invalid' },
  ];
  const refused = [];
  for (const [i, c] of cases.entries()) {
    const p = await t.openPage(browser, node, `mallory${i}`);
    const r = await p.join({ room, token: c.token, publish: false });
    t.check(!r.ok && r.code === c.code, `join with ${c.what} is refused with ${c.code}`, r);
    refused.push(p);
  }
  const q = await refused[0].request({ type: 'publish', sdp: 'v=0\r\n', tracks: [{ mid: '0', source: 'camera' }] });
  t.check(!q.ok && (q.code === 'not_joined' || q.code === 'closed'),
    'a refused socket cannot publish (not_joined, or the node closed it)', q);

  // Subscribe-only right: joins, may not publish, still receives.
  const viewer = await t.openPage(browser, node, 'viewer');
  const v = await viewer.join({ room, token: t.token({ room, name: 'viewer', rights: ['subscribe'] }), video: VIDEO });
  t.check(!v.ok && v.code === 'forbidden', 'a token without the publish right joins but publish is forbidden', v);

  await expectMedia(t, [
    ...allPairs([alice, bob]),
    { rx: viewer, tx: alice, kind: 'video', source: 'camera' },
  ], { timeoutMs: 60000 });

  for (const p of refused) {
    const s = await p.stats();
    const leaked = s.events.filter((e) => !['error', 'socket_closed'].includes(e.type));
    t.check(!s.joined && s.trackEvents === 0 && s.remote.length === 0 && s.connections.subscribe === null &&
      leaked.length === 0 && s.participants.length === 0,
    `${p.label} (refused) received no media and no room events`,
    { joined: s.joined, trackEvents: s.trackEvents, remote: s.remote, leaked, participants: s.participants });
  }
  for (const p of [alice, bob]) {
    const s = await p.stats();
    const others = s.participants.map((x) => x.name).sort();
    t.check(JSON.stringify(others) === JSON.stringify([p === alice ? 'bob' : 'alice', 'viewer']),
      `${p.label} sees only the admitted participants`, others);
  }
  await t.poll('admin /rooms lists 3 participants (alice, bob, viewer)', async () => {
    const rooms = await node.admin('/rooms');
    const count = roomParticipantCount(rooms, room);
    return { ok: count === 3, count, rooms };
  }, { timeoutMs: 10000 });
});
