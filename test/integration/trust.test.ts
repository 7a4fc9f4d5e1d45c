// Trust lifecycle between real daemons: a request with a justification survives the target's restart, approve
// gives mutual trust on both sides within 1 s (pushed, not polled), reject, handshakes in both directions
// auto-approve, and untrust revokes both ways, closes open streams and stops all data. Each test sets up the
// trust it needs (the cluster is shared), so any one runs alone: node --test --test-name-pattern=<name>.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, explain, isMutual, readBytes, sleep, waitFor } from './harness.js';
import type { PilotClient } from '../../src/sdk/client.js';

let c: Cluster;
const id = (name: string): number => c.node(name).nodeId;

before(async () => {
  c = await Cluster.start('trust', ['ann', 'bob', 'cat', 'dan']);
});

after(async () => {
  await c?.close();
});

/** Poll every 5 ms until `fn`; returns elapsed ms. */
async function timeUntil(what: string, fn: () => Promise<boolean>, timeoutMs = 10_000): Promise<number> {
  const t0 = performance.now();
  await waitFor(what, fn, timeoutMs, 5);
  return performance.now() - t0;
}

async function trustedIds(cl: PilotClient): Promise<number[]> {
  const t = await cl.trusted();
  assert.ok(t.ok);
  return t.value.trusted.map((x) => x.node_id);
}

test('handshake with justification → pending survives a restart of the target → approve → mutual within 1 s on both sides', async () => {
  const h = await c.ok('ann', ['handshake', 'bob', 'ann needs bob for the nightly report']);
  assert.deepEqual(h, { node_id: id('bob'), status: 'pending' });
  const seenMs = await timeUntil('bob to list ann as pending', async () => {
    const p = await c.ok('bob', ['pending']);
    return p.pending.some((x: any) => x.node_id === id('ann'));
  });
  console.log(`# handshake → visible in target's pending (incl. pilotctl spawns): ${Math.round(seenMs)} ms`);

  // The request is on disk: it survives bob's restart, justification and all.
  const before = c.node('bob');
  await c.restartDaemon('bob');
  assert.equal(c.node('bob').nodeId, before.nodeId);
  const p = await c.ok('bob', ['pending']);
  const req = p.pending.find((x: any) => x.node_id === id('ann'));
  assert.ok(req, `pending after restart: ${JSON.stringify(p)}`);
  assert.equal(req.justification, 'ann needs bob for the nightly report');
  // (Its hostname and received_at surviving too: the last test in this file.)

  const ca = await c.client('ann');
  const cb = await c.client('bob');
  // Approve through the SDK so the clock starts at the call, not at a process spawn.
  const t0 = performance.now();
  const ap = await cb.approve(id('ann'));
  assert.ok(ap.ok, !ap.ok ? ap.error.message : '');
  const approveMs = performance.now() - t0;
  await waitFor('mutual trust on both sides', async () => (await isMutual(ca, id('bob'))) && (await isMutual(cb, id('ann'))), 5000, 2);
  const mutualMs = performance.now() - t0;
  console.log(`# time to mutual trust: approve call ${approveMs.toFixed(1)} ms, both sides mutual ${mutualMs.toFixed(1)} ms after approve`);
  assert.ok(mutualMs < 1000, `mutual trust took ${mutualMs} ms (bound: 1 s)`);
  // The pending entry is gone and data flows at once.
  assert.deepEqual((await c.ok('bob', ['pending'])).pending, []);
  const e = await c.ok('ann', ['connect', 'bob', '7', '--message', 'after approve']);
  assert.equal(e.response, 'after approve');
});

test('reject: the requester stays untrusted, no data flows, and it may ask again', async () => {
  await c.ok('cat', ['handshake', 'bob', 'cat wants in']);
  await waitFor('bob to list cat', async () => (await c.ok('bob', ['pending'])).pending.some((x: any) => x.node_id === id('cat')));
  assert.deepEqual(await c.ok('bob', ['reject', String(id('cat')), 'no thanks']), { node_id: id('cat'), status: 'rejected' });
  assert.deepEqual((await c.ok('bob', ['pending'])).pending, []);
  const cc = await c.client('cat');
  await sleep(200); // a pushed trust would land in this window
  assert.ok(!(await trustedIds(cc)).includes(id('bob')));
  const cb = await c.client('bob');
  assert.ok(!(await trustedIds(cb)).includes(id('cat')));
  const m = await c.json('cat', ['send-message', 'bob', '--data', 'let me in']);
  assert.equal(m.code, 1, explain(m));
  assert.equal(m.error?.code, 'connection_failed');
  assert.match(`${m.error?.message} ${m.error?.hint}`, /handshake/);
  // Asking again after a reject is allowed (the registry forgot the answered request).
  const again = await c.json('cat', ['handshake', 'bob', 'second try']);
  assert.equal(again.code, 0, explain(again));
  await waitFor('the second request', async () => (await c.ok('bob', ['pending'])).pending.some((x: any) => x.justification === 'second try'));
  await c.ok('bob', ['reject', String(id('cat'))]);
});

test('handshakes in both directions approve without an operator', async () => {
  const cc = await c.client('cat');
  const cd = await c.client('dan');
  const h1 = await cc.handshake(String(id('dan')), 'cat → dan');
  assert.ok(h1.ok && h1.value.status === 'pending');
  await waitFor('dan to see the request', async () => {
    const p = await cd.pending();
    return p.ok && p.value.pending.some((x) => x.node_id === id('cat'));
  });
  const t0 = performance.now();
  const h2 = await cd.handshake(String(id('cat')), 'dan → cat');
  assert.ok(h2.ok, !h2.ok ? h2.error.message : '');
  assert.equal(h2.value.status, 'approved', 'a counter-handshake approves the pending request');
  await waitFor('mutual trust cat↔dan', async () => (await isMutual(cc, id('dan'))) && (await isMutual(cd, id('cat'))), 5000, 5);
  console.log(`# mutual handshake → mutual trust on both sides: ${(performance.now() - t0).toFixed(1)} ms`);
  const e = await c.ok('dan', ['connect', 'cat', '7', '--message', 'mutual']);
  assert.equal(e.response, 'mutual');
});

test('simultaneous handshakes (neither sees the other first) still end in mutual trust', async () => {
  const ca = await c.client('ann');
  const cd = await c.client('dan');
  const [h1, h2] = await Promise.all([ca.handshake(String(id('dan')), 'ann ⇄ dan'), cd.handshake(String(id('ann')), 'dan ⇄ ann')]);
  assert.ok(h1.ok, !h1.ok ? h1.error.message : '');
  assert.ok(h2.ok, !h2.ok ? h2.error.message : '');
  await waitFor('mutual trust ann↔dan', async () => (await isMutual(ca, id('dan'))) && (await isMutual(cd, id('ann'))), 5000, 10);
  assert.deepEqual((await c.ok('dan', ['pending'])).pending, []);
  assert.deepEqual((await c.ok('ann', ['pending'])).pending, []);
});

test('untrust revokes both ways, errors an open stream, and stops data in both directions with a handshake hint', async () => {
  const ca = await c.client('ann');
  const cb = await c.client('bob');
  // Its own set-up: mutual trust ann↔bob (already there after the first test; built here when run alone).
  await c.trust('ann', 'bob', 'before untrust');
  assert.ok(await isMutual(ca, id('bob')), 'ann and bob trust each other');
  // An open stream ann → bob's echo port.
  const s = await ca.dial('bob', 7);
  assert.ok(s.ok, !s.ok ? s.error.message : '');
  const stream = s.value;
  const outcome = new Promise<string>((resolve) => {
    stream.on('error', (e: Error) => resolve(`error: ${e.message}`));
    stream.on('close', () => resolve('closed'));
  });
  stream.write('before');
  assert.equal((await readBytes(stream, 6)).toString(), 'before');

  const t0 = performance.now();
  assert.deepEqual(await c.ok('bob', ['untrust', String(id('ann'))]), { node_id: id('ann'), status: 'untrusted' });
  const how = await Promise.race([outcome, sleep(5000).then(() => 'still open')]);
  console.log(`# untrust → ann's open stream ended (${how}) after ${(performance.now() - t0).toFixed(1)} ms`);
  assert.notEqual(how, 'still open', 'the open stream must end when trust is revoked');
  assert.match(how, /^error/, 'an abort, not an orderly end');
  // Pushed to ann: she no longer trusts bob either.
  await waitFor('ann to drop bob', async () => !(await trustedIds(ca)).includes(id('bob')), 2000, 10);
  assert.ok(!(await trustedIds(cb)).includes(id('ann')));
  assert.equal((await c.ok('bob', ['connections'])).total, 0);

  for (const [from, to] of [['ann', 'bob'], ['bob', 'ann']] as const) {
    const m = await c.json(from, ['send-message', to, '--data', 'still there?']);
    assert.equal(m.code, 1, explain(m));
    assert.equal(m.error?.code, 'connection_failed', explain(m));
    assert.match(`${m.error?.message} ${m.error?.hint}`, /handshake/, explain(m));
    const k = await c.json(from, ['connect', to, '7', '--message', 'x', '--timeout', '5s']);
    assert.equal(k.code, 1, explain(k));
    assert.match(`${k.error?.message} ${k.error?.hint}`, /handshake/, explain(k));
  }
  // And trust can be rebuilt.
  const ms = await c.trust('ann', 'bob', 'make up');
  assert.ok(ms < 1000, `re-trust took ${ms} ms`);
  assert.equal((await c.ok('ann', ['connect', 'bob', '7', '--message', 'friends again'])).response, 'friends again');
});

// The registry re-delivers the queued request by poll after a restart, without hostname or key; that copy
// overwrote the stored one until 58d624d.
test('a pending request keeps its hostname and received time across a restart of the target', async () => {
  const cc = await c.client('cat');
  const h = await cc.handshake(String(id('ann')), 'cat asks ann');
  assert.ok(h.ok, !h.ok ? h.error.message : '');
  const first = await waitFor('ann to list cat', async () => (await c.ok('ann', ['pending'])).pending.find((x: any) => x.node_id === id('cat')));
  assert.equal(first.hostname, 'cat');
  try {
    await c.restartDaemon('ann');
    await sleep(500); // the re-delivery by poll happens right after re-registration
    const again = (await c.ok('ann', ['pending'])).pending.find((x: any) => x.node_id === id('cat'));
    assert.ok(again);
    assert.equal(again.hostname, 'cat');
    assert.equal(again.received_at, first.received_at);
  } finally {
    await c.json('ann', ['reject', String(id('cat'))]);
  }
});
