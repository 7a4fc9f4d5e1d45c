// DPLPMTUD state machine (src/transport/pmtud.ts): the search from the route's ceiling down, lost probes,
// confirmation and black holes, idle paths, and probing off where the route does not carry more than the base.
import test from 'node:test';
import assert from 'node:assert/strict';
import { BASE_PLPMTU, CONFIRM_INTERVAL_US, MAX_PLPMTU, MAX_PROBES, PROBE_TIMEOUT_US, PathMtu, RAISE_INTERVAL_US } from '../../../src/transport/pmtud.js';
import { decodePmtuAck, decodePmtuProbe, encodePmtuAck, encodePmtuProbe } from '../../../src/wire/segment.js';

test('pmtud: loopback (route MTU 65536) is found with one probe, capped at 65,000', () => {
  const m = new PathMtu(65_536, 0);
  assert.equal(m.phase, 'search');
  assert.equal(m.plpmtu, BASE_PLPMTU);
  const p = m.poll(0);
  assert.ok(p);
  assert.equal(p.bytes, MAX_PLPMTU);
  assert.equal(m.poll(1), null, 'one probe outstanding at a time');
  m.onAck(p.id, 100);
  assert.equal(m.plpmtu, MAX_PLPMTU);
  assert.equal(m.phase, 'complete');
  assert.equal(m.changes, 1);
});

test('pmtud: a 1500-byte link probes 1472 (the ceiling) and nothing larger', () => {
  const m = new PathMtu(1500, 0);
  const p = m.poll(0)!;
  assert.equal(p.bytes, 1472);
  m.onAck(p.id, 10);
  assert.equal(m.plpmtu, 1472);
});

test('pmtud: off where the route carries no more than the base (or is unknown): 1452, no probes', () => {
  for (const mtu of [1400, 1480, null]) {
    const m = new PathMtu(mtu, 0);
    assert.equal(m.phase, 'off');
    assert.equal(m.plpmtu, BASE_PLPMTU);
    assert.equal(m.poll(0), null);
    assert.equal(m.deadlineUs, Infinity);
  }
});

test('pmtud: lost probes (MAX_PROBES timeouts) move the search down the candidates; a stale or foreign ack is ignored', () => {
  const m = new PathMtu(9000, 0); // a jumbo-frame LAN whose far side only carries 4096-ish
  let now = 0;
  const sizes: number[] = [];
  for (let i = 0; i < MAX_PROBES * 2; i++) {
    const p = m.poll(now)!;
    sizes.push(p.bytes);
    assert.equal(m.deadlineUs, now + PROBE_TIMEOUT_US);
    now += PROBE_TIMEOUT_US;
  }
  assert.deepEqual(sizes, [8972, 8972, 8972, 4068, 4068, 4068]);
  const p = m.poll(now)!; // 4068 timed out too: 1472
  assert.equal(p.bytes, 1472);
  m.onAck(p.id + 1, now); // not the outstanding probe
  assert.equal(m.plpmtu, BASE_PLPMTU);
  m.onAck(p.id, now + 10);
  assert.equal(m.plpmtu, 1472);
  assert.equal(m.phase, 'complete');
});

test('pmtud: nothing above the base answers: the search ends at 1452 and is retried after the raise interval', () => {
  const m = new PathMtu(1500, 0);
  let now = 0;
  for (let i = 0; i < MAX_PROBES; i++) {
    assert.ok(m.poll(now));
    now += PROBE_TIMEOUT_US;
  }
  assert.equal(m.poll(now), null);
  assert.equal(m.phase, 'complete');
  assert.equal(m.plpmtu, BASE_PLPMTU);
  assert.equal(m.deadlineUs, now + RAISE_INTERVAL_US);
  const again = m.poll(now + RAISE_INTERVAL_US);
  assert.equal(again?.bytes, 1472);
});

test('pmtud: confirmation every CONFIRM_INTERVAL; a black hole (MAX_PROBES losses) falls back to 1452 and searches again', () => {
  const m = new PathMtu(65_536, 0);
  m.onAck(m.poll(0)!.id, 1);
  assert.equal(m.deadlineUs, 1 + CONFIRM_INTERVAL_US);
  let now = 1 + CONFIRM_INTERVAL_US;
  const c = m.poll(now)!;
  assert.equal(c.bytes, MAX_PLPMTU, 'confirms the size in use');
  m.onAck(c.id, now + 5);
  assert.equal(m.plpmtu, MAX_PLPMTU);
  now = now + 5 + CONFIRM_INTERVAL_US;
  for (let i = 0; i < MAX_PROBES; i++) {
    assert.equal(m.poll(now)?.bytes, MAX_PLPMTU);
    now += PROBE_TIMEOUT_US;
  }
  m.onTimer(now);
  assert.equal(m.plpmtu, BASE_PLPMTU, 'the path stopped carrying it');
  assert.equal(m.phase, 'search');
  assert.equal(m.changes, 2);
  assert.equal(m.poll(now)?.bytes, MAX_PLPMTU, 'and the search starts over');
});

test('pmtud: an idle path is not confirmed (no large probes) until data crosses it again', () => {
  const m = new PathMtu(65_536, 0);
  m.onAck(m.poll(0)!.id, 1);
  let now = 1 + CONFIRM_INTERVAL_US;
  assert.equal(m.poll(now, true), null);
  assert.equal(m.deadlineUs, now + CONFIRM_INTERVAL_US);
  now += CONFIRM_INTERVAL_US;
  assert.equal(m.poll(now, false)?.bytes, MAX_PLPMTU, 'busy again: confirmed at the next interval');
});

test('pmtu probe and ack frames: round trip; hostile input decodes to null', () => {
  const buf = new Uint8Array(2000);
  const n = encodePmtuProbe(77, 1420, buf);
  assert.equal(n, 1420);
  assert.equal(decodePmtuProbe(buf.subarray(0, n)), 77);
  assert.equal(encodePmtuProbe(1, 4, buf), 0, 'smaller than its header');
  assert.equal(encodePmtuProbe(1, 3000, buf), 0, 'larger than the buffer');
  const a = new Uint8Array(9);
  assert.equal(encodePmtuAck(77, 1420, a), 9);
  assert.deepEqual(decodePmtuAck(a), { id: 77, receivedBytes: 1420 });
  for (const bad of [new Uint8Array(0), new Uint8Array([0x04, 1]), new Uint8Array([0x05, 0, 0, 0, 1]), new Uint8Array(9)]) {
    assert.equal(decodePmtuProbe(bad) !== null && bad[0] !== 0x04, false);
    assert.equal(decodePmtuAck(bad), null);
  }
});
