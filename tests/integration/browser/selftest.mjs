// Self-test of the harness and the demo page against mock_node.mjs (no
// media): processes start and are cleaned up, JWTs verify (also with
// openssl), the page joins, publishes (the mock answers its offer), sees
// participants and tracks come and go, token errors reach the hook, and
// admin /rooms counts. Run: node selftest.mjs [path to a node or the mock]

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { roomName, roomParticipantCount, runTest, signJwt, verifyJwt } from './harness.mjs';

if (!process.argv[2]) process.argv[2] = join(dirname(fileURLToPath(import.meta.url)), 'mock_node.mjs');

function alive(pid) {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

runTest('selftest', async (t) => {
  // Tokens: our signer against our verifier and against openssl.
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: 'u1', room: 'r', exp: now + 60 };
  const tok = signJwt('s3cret', claims);
  t.check(JSON.stringify(verifyJwt('s3cret', tok)) === JSON.stringify(claims), 'a signed JWT verifies with its secret');
  t.check(verifyJwt('other', tok) === null, 'a JWT does not verify with another secret');
  t.check(verifyJwt('s3cret', signJwt('s3cret', claims, { alg: 'none' })) === null, 'an alg=none JWT does not verify');
  const [h, , sig] = tok.split('.');
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, room: 'x' })).toString('base64url')}.${sig}`;
  t.check(verifyJwt('s3cret', forged) === null, 'a JWT with a swapped payload does not verify');
  try {
    const [a, b] = tok.split('.');
    const mac = execFileSync('openssl', ['dgst', '-sha256', '-hmac', 's3cret', '-binary'], { input: `${a}.${b}` });
    t.check(mac.toString('base64url') === sig, 'the HS256 signature equals openssl\'s HMAC-SHA256');
  } catch (e) {
    t.info(`openssl not usable here (${e.message}): cross-check skipped`);
  }

  const node = await t.startNode();
  const browser = await t.launchBrowser();
  const room = roomName('self');
  const alice = await t.openPage(browser, node, 'alice');
  const bob = await t.openPage(browser, node, 'bob');
  t.check(true, 'the demo page loads and exposes window.conclaveTest');

  const shot = '/tmp/conclave-selftest-page.png';
  const d = await alice.join({ room, publish: false });
  t.check(d.ok, 'alice joins with a token from /dev/token', d);
  await alice.leave();
  let r = await alice.join({ room, token: t.token({ room, name: 'alice' }), video: { width: 320, height: 240 } });
  t.check(r.ok, 'alice joins with a harness token and publishes (mock answer applied)', r);
  r = await bob.join({ room, token: t.token({ room, name: 'bob' }), video: { width: 320, height: 240 } });
  t.check(r.ok, 'bob joins and publishes', r);

  await t.poll('bob knows alice and her camera + microphone tracks', async () => {
    const s = await bob.stats();
    const mine = s.tracks.filter((x) => x.participant === alice.participant).map((x) => x.source).sort();
    return { ok: s.participants.some((p) => p.name === 'alice') && mine.join() === 'camera,microphone', mine };
  });
  await t.poll('alice learns of bob through participant_joined and track_added', async () => {
    const s = await alice.stats();
    return { ok: s.events.some((e) => e.type === 'participant_joined' && e.participant === bob.participant) &&
      s.tracks.filter((x) => x.participant === bob.participant).length === 2 };
  });
  const ls = await alice.stats();
  t.check(ls.local.map((x) => x.source).sort().join() === 'camera,microphone' && ls.connections.publish !== null,
    'alice\'s stats list her published camera and microphone', ls.local);

  r = await alice.publishScreen({ canvas: true });
  t.check(r.ok, 'alice publishes a canvas screen track', r);
  await t.poll('bob is told of alice\'s screen track', async () =>
    (await bob.stats()).tracks.some((x) => x.participant === alice.participant && x.source === 'screen'));
  r = await alice.unpublishScreen();
  t.check(r.ok, 'alice unpublishes the screen (unpublish, then a new offer)', r);
  await t.poll('bob sees the screen track removed', async () =>
    !(await bob.stats()).tracks.some((x) => x.source === 'screen'));

  for (const [what, token, code] of [
    ['no token', null, 'token_missing'],
    ['an expired token', t.token({ room, iat: now - 7200, exp: now - 3600 }), 'token_expired'],
    ['another secret', t.token({ room, secret: 'nope' }), 'token_invalid'],
    ['another room', t.token({ room: 'elsewhere' }), 'token_wrong_room'],
  ]) {
    const m = await t.openPage(browser, node, 'mallory');
    const x = await m.join({ room, token, publish: false });
    t.check(!x.ok && x.code === code, `join with ${what} gives ${code} to the hook`, x);
    const s = await m.stats();
    t.check(s.errors.some((e) => e.code === code) && !s.joined, 'the refused page lists the error and is not joined');
    await m.close();
  }

  const count = async () => roomParticipantCount(await node.admin('/rooms'), room);
  t.check(await count() === 2, 'admin /rooms counts 2');
  await alice.page.screenshot({ path: shot });
  t.info(`screenshot of alice's page: ${shot}`);
  r = await bob.leave();
  t.check(r.ok, 'bob leaves', r);
  await t.poll('alice gets participant_left and track_removed for bob', async () => {
    const s = await alice.stats();
    return s.events.some((e) => e.type === 'participant_left' && e.participant === bob.participant) &&
      s.tracks.length === 0 && s.participants.length === 0;
  });
  t.check(await count() === 1, 'admin /rooms counts 1');

  // Cleanup really ends everything.
  const pids = [...t.browsers.map((b) => b.child.pid), ...t.nodes.map((n) => n.child.pid)];
  const dirs = t.browsers.map((b) => b.dir);
  await t.cleanup();
  t.check(pids.every((p) => !alive(p)), 'cleanup leaves no chromium or node process', pids.filter(alive));
  t.check(dirs.every((p) => !existsSync(p)), 'cleanup removes the chromium profile directories');
}, { timeoutMs: 90000 });
