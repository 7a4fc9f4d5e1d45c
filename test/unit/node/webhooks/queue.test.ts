// src/node/webhooks/queue.ts (sans-IO delivery queue) and config.ts: backoff and its jitter bounds, order and
// head of line, overflow counted, 4xx refusals, persistence round trip, the signature over the raw body.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { Rng, seedFromEnv } from '../../../../src/core/rng.js';
import type { NodeEvent } from '../../../../src/node/events.js';
import { WebhookQueue, backoffMs, decodeSnapshot, eventMatches, signBody, DEFAULT_QUEUE_OPTIONS } from '../../../../src/node/webhooks/queue.js';
import { displayUrl, makeTarget, parseEventFilter, parseWebhookUrl, urlWarnings } from '../../../../src/node/webhooks/config.js';

const seed = seedFromEnv();
test.after(() => console.log(`seed ${seed} (replay with PILOT_SEED=${seed})`));

const SECRET = 'a-test-secret-of-enough-length';
const target = { url: 'http://127.0.0.1:9/hook', secret: SECRET, events: null };

function ev(n: number, atMs = 1_000_000 + n): NodeEvent & { at_ms: number } {
  return { type: 'message.received', data: { id: `m${n}`, from: 7, from_address: '0:0000.0000.0007', type: 'text', size: n }, at_ms: atMs };
}

test('backoff doubles from the base up to the cap, and the jitter stays within [1 - jitter, 1] of it', () => {
  const rng = new Rng(seed);
  const o = { backoffBaseMs: 1000, backoffMaxMs: 60_000, jitter: 0.5 };
  for (let failures = 1; failures <= 12; failures++) {
    const full = Math.min(60_000, 1000 * 2 ** (failures - 1));
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < 400; i++) {
      const d = backoffMs(failures, o, rng);
      lo = Math.min(lo, d);
      hi = Math.max(hi, d);
      assert.ok(d >= Math.round(full * 0.5) && d <= full, `failure ${failures}: ${d} outside [${full / 2}, ${full}]`);
    }
    // The draws spread over the window (not one value): jitter is really applied.
    assert.ok(hi - lo > full * 0.3, `failure ${failures}: spread ${hi - lo} too small`);
  }
  assert.equal(backoffMs(3, { ...o, jitter: 0 }, rng), 4000);
});

test('events leave in order, one at a time; a failure backs off and the same bytes are retried', () => {
  const q = new WebhookQueue(new Rng(seed), {}, () => ({ node_id: 9, address: '0:0000.0000.0009' }));
  q.setTarget(target);
  q.handleEvent(ev(1), 'e1');
  q.handleEvent(ev(2), 'e2');
  const now = 2_000_000;
  const r1 = q.pollRequest(now)!;
  assert.equal(r1.eventId, 'e1');
  assert.equal(q.pollRequest(now), null, 'one in flight at a time');
  const body = JSON.parse(r1.body);
  assert.deepEqual(Object.keys(body), ['id', 'type', 'time', 'node_id', 'address', 'data']);
  assert.equal(body.id, 'e1');
  assert.equal(body.type, 'message.received');
  assert.equal(body.time, new Date(1_000_001).toISOString());
  assert.equal(body.node_id, 9);
  assert.equal(r1.headers['x-pilot-event-id'], 'e1');
  assert.equal(r1.headers['x-pilot-timestamp'], String(Math.floor(1_000_001 / 1000)));
  assert.equal(r1.headers['x-pilot-delivery-attempt'], '1');

  q.handleResult('e1', { error: 'ECONNREFUSED' }, now);
  const s = q.status();
  assert.equal(s.failed_attempts, 1);
  assert.equal(s.last_error, 'ECONNREFUSED');
  const due = q.pollTimeout()!;
  assert.ok(due >= now + 500 && due <= now + 1000, `first retry after 0.5–1 s, got ${due - now}`);
  assert.equal(q.pollRequest(due - 1), null, 'not before the backoff');
  const r1b = q.pollRequest(due)!;
  assert.equal(r1b.eventId, 'e1', 'head of line: the failed event goes first again');
  assert.equal(r1b.body, r1.body);
  assert.equal(r1b.headers['x-pilot-signature'], r1.headers['x-pilot-signature']);
  assert.equal(r1b.headers['x-pilot-delivery-attempt'], '2');
  q.handleResult('e1', { status: 503 }, due);
  const due2 = q.pollTimeout()!;
  assert.ok(due2 - due >= 1000 && due2 - due <= 2000, `second retry after 1–2 s, got ${due2 - due}`);
  q.handleResult('e1', { status: 204 }, due2); // stale: nothing in flight → ignored
  const r1c = q.pollRequest(due2)!;
  q.handleResult(r1c.eventId, { status: 200 }, due2);
  assert.equal(q.pollRequest(due2)!.eventId, 'e2', 'after a success the next goes at once');
  q.handleResult('e2', { status: 201 }, due2);
  assert.equal(q.status().delivered, 2);
  assert.equal(q.status().queued, 0);
  assert.equal(q.status().consecutive_failures, 0);
  assert.equal(q.pollTimeout(), null);
});

test('a 4xx refusal drops the event (counted); 429 and 408 are retried', () => {
  const q = new WebhookQueue(new Rng(seed));
  q.setTarget(target);
  q.handleEvent(ev(1), 'e1');
  q.handleEvent(ev(2), 'e2');
  q.handleResult(q.pollRequest(0)!.eventId, { status: 429 }, 0);
  assert.equal(q.status().queued, 2);
  const t = q.pollTimeout()!;
  q.handleResult(q.pollRequest(t)!.eventId, { status: 401 }, t);
  assert.equal(q.status().dropped_rejected, 1);
  assert.equal(q.status().queued, 1);
  assert.equal(q.status().last_error, 'HTTP 401');
  assert.equal(q.pollRequest(t)!.eventId, 'e2');
});

test('the queue is bounded: overflow drops the oldest and is counted', () => {
  const q = new WebhookQueue(new Rng(seed), { maxEvents: 5 });
  q.setTarget(target);
  for (let i = 0; i < 12; i++) q.handleEvent(ev(i), `e${i}`);
  const s = q.status();
  assert.equal(s.queued, 5);
  assert.equal(s.queue_limit, 5);
  assert.equal(s.dropped_overflow, 7);
  assert.equal(q.pollRequest(0)!.eventId, 'e7', 'the newest five are kept');
  // The one on the wire is not dropped by overflow (its answer must find it).
  q.handleEvent(ev(20), 'e20');
  assert.equal(q.status().dropped_overflow, 8);
  q.handleResult('e7', { status: 200 }, 0);
  assert.equal(q.status().delivered, 1);
  assert.equal(q.pollRequest(0)!.eventId, 'e9');
});

test('filters: exact types, prefix.* and *, and no target = nothing queued', () => {
  assert.ok(eventMatches(null, 'trust.approved'));
  assert.ok(eventMatches(['trust.*'], 'trust.approved'));
  assert.ok(!eventMatches(['trust.*'], 'peer.connected'));
  assert.ok(eventMatches(['peer.connected', 'file.received'], 'file.received'));
  assert.ok(eventMatches(['*'], 'daemon.started'));
  const q = new WebhookQueue(new Rng(seed));
  assert.equal(q.handleEvent(ev(1), 'x'), false, 'no target');
  q.setTarget({ ...target, events: ['trust.*'] });
  assert.equal(q.handleEvent(ev(1), 'x'), false, 'filtered out');
  assert.equal(q.handleEvent({ type: 'trust.approved', data: { node_id: 3, by: 'local' }, at_ms: 5 }, 'y'), true);
  assert.equal(q.status().queued, 1);
});

test('persistence round trip: snapshot → JSON → restore keeps events, bodies, attempts and counters', () => {
  const a = new WebhookQueue(new Rng(seed), { maxEvents: 10 });
  a.setTarget(target);
  for (let i = 0; i < 4; i++) a.handleEvent(ev(i), `e${i}`);
  a.handleResult(a.pollRequest(0)!.eventId, { error: 'down' }, 0);
  const snap = JSON.parse(JSON.stringify(a.snapshot()));
  const b = new WebhookQueue(new Rng(seed + 1), { maxEvents: 10 });
  assert.deepEqual(b.restore(snap), { restored: 4, skipped: 0 });
  b.setTarget(target);
  assert.deepEqual(b.snapshot(), a.snapshot());
  assert.equal(b.status().failed_attempts, 1);
  const r = b.pollRequest(1)!;
  assert.equal(r.eventId, 'e0');
  assert.equal(r.headers['x-pilot-delivery-attempt'], '2');
  // A smaller bound on restore keeps the newest and counts the rest as overflow.
  const c = new WebhookQueue(new Rng(seed), { maxEvents: 2 });
  assert.deepEqual(c.restore(snap), { restored: 2, skipped: 0 });
  assert.equal(c.status().dropped_overflow, 2);
  // Garbage never throws.
  for (const g of [null, 42, 'x', { events: [1, { id: 'a' }], counters: 'no' }, { events: {} }]) {
    const d = decodeSnapshot(g);
    assert.ok(Array.isArray(d.events));
  }
  assert.equal(decodeSnapshot({ events: [1, { id: 'a' }] }).skipped, 2);
});

test('events older than maxAgeMs are dropped as expired', () => {
  const q = new WebhookQueue(new Rng(seed), { maxAgeMs: 1000 });
  q.setTarget(target);
  q.handleEvent(ev(1, 0), 'old');
  q.handleEvent(ev(2, 5000), 'new');
  assert.equal(q.pollRequest(5500)!.eventId, 'new');
  assert.equal(q.status().dropped_expired, 1);
});

test('the signature is HMAC-SHA256 over the raw body bytes, and absent without a secret', () => {
  const q = new WebhookQueue(new Rng(seed));
  q.setTarget(target);
  q.handleEvent({ type: 'message.received', data: { id: 'ü', from: 1, from_address: 'a', type: 'text', size: 1 }, at_ms: 1 }, 'e1');
  const r = q.pollRequest(0)!;
  const want = 'sha256=' + createHmac('sha256', SECRET).update(Buffer.from(r.body, 'utf8')).digest('hex');
  assert.equal(r.headers['x-pilot-signature'], want);
  assert.equal(signBody(SECRET, Buffer.from(r.body)), want);
  assert.notEqual(signBody(SECRET, r.body + ' '), want, 'one byte more, another signature');
  const u = new WebhookQueue(new Rng(seed));
  u.setTarget({ ...target, secret: null });
  u.handleEvent(ev(1), 'e1');
  assert.equal(u.pollRequest(0)!.headers['x-pilot-signature'], undefined);
  assert.equal(DEFAULT_QUEUE_OPTIONS.maxEvents, 1000);
});

test('config: URLs, secrets, event lists, warnings and the displayed URL', () => {
  assert.ok(parseWebhookUrl('https://example.com/h').ok);
  assert.equal(parseWebhookUrl('ftp://example.com').ok, false);
  assert.equal(parseWebhookUrl('not a url').ok, false);
  assert.deepEqual(urlWarnings('http://127.0.0.1:8080/h'), []);
  assert.deepEqual(urlWarnings('http://localhost/h'), []);
  assert.deepEqual(urlWarnings('https://hooks.example.com/h'), []);
  assert.equal(urlWarnings('http://hooks.example.com/h').length, 1);
  assert.match(urlWarnings('http://10.0.0.5/h')[0]!, /not loopback/);
  assert.equal(displayUrl('https://user:pw@example.com/h?token=abc&x=1'), 'https://example.com/h?token=***&x=***');
  assert.deepEqual(parseEventFilter('trust.approved, peer.*'), { ok: true, value: ['trust.approved', 'peer.*'] });
  assert.deepEqual(parseEventFilter(''), { ok: true, value: null });
  assert.equal(parseEventFilter('trust.nope').ok, false);
  assert.equal(parseEventFilter('bogus.*').ok, false);
  assert.equal(makeTarget('https://x.example/h', 'short', null).ok, false, 'secret under 16 characters');
  const t = makeTarget('https://x.example/h', SECRET, 'file.received');
  assert.ok(t.ok);
  assert.deepEqual(t.value, { url: 'https://x.example/h', secret: SECRET, events: ['file.received'] });
});
