// src/node/trust/store.ts: the pin, the bounded pending list, and coalesced writes of incoming requests
// (issue 10, low: "the local pending list grows without bound; trust.json is rewritten and fsynced per request").
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrustStore, DEFAULT_MAX_PENDING } from '../../../src/node/trust/store.js';
import { Driver } from '../../../src/node/driver.js';
import { monotonicClock, realTimers } from '../../../src/core/clock.js';

function tempStore(opts: Parameters<typeof TrustStore.open>[3] = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'trust-'));
  const path = join(dir, 'trust.json');
  const r = TrustStore.open(path, Date.now(), new Driver(monotonicClock, realTimers), opts);
  assert.ok(r.ok);
  return { store: r.value, path, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const req = (id: number, i: number) => ({
  node_id: id,
  justification: `j${id}`,
  hostname: null,
  public_key: null,
  received_at: new Date(1_800_000_000_000 + i * 1000).toISOString(),
});

test('pending requests are bounded: past the limit the oldest is dropped, a repeat replaces', () => {
  const { store, done } = tempStore({ pendingWriteDelayMs: 0 });
  try {
    for (let i = 0; i < DEFAULT_MAX_PENDING + 50; i++) {
      const r = store.addPending(req(1000 + i, i));
      assert.ok(r.ok);
      assert.equal(r.value.dropped, i < DEFAULT_MAX_PENDING ? null : 1000 + i - DEFAULT_MAX_PENDING);
    }
    const ids = store.listPending().map((p) => p.node_id);
    assert.equal(ids.length, DEFAULT_MAX_PENDING);
    assert.equal(ids[0], 1050);
    assert.equal(ids.at(-1), 1000 + DEFAULT_MAX_PENDING + 49);
    const again = store.addPending(req(1100, 9999));
    assert.ok(again.ok);
    assert.equal(again.value.dropped, null, 'a repeat from a listed node drops nobody');
    assert.equal(store.listPending().length, DEFAULT_MAX_PENDING);
  } finally {
    done();
  }
});

test('incoming requests are written coalesced (one write for a burst), trust decisions at once; flush() lands them', async () => {
  const { store, path, done } = tempStore({ pendingWriteDelayMs: 100 });
  try {
    for (let i = 0; i < 500; i++) assert.ok(store.addPending(req(2000 + i, i)).ok);
    assert.equal(existsSync(path), false, 'no write per request');
    await new Promise((r) => setTimeout(r, 200));
    const first = statSync(path);
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).pending.length, DEFAULT_MAX_PENDING);
    for (let i = 0; i < 100; i++) assert.ok(store.addPending(req(3000 + i, 1000 + i)).ok);
    assert.equal(statSync(path).mtimeMs, first.mtimeMs, 'not rewritten yet');
    assert.ok(!(JSON.parse(readFileSync(path, 'utf8')).pending as { node_id: number }[]).some((p) => p.node_id === 3099));
    assert.ok(store.flush().ok);
    const pending = JSON.parse(readFileSync(path, 'utf8')).pending as { node_id: number }[];
    assert.ok(pending.some((p) => p.node_id === 3099));
    // A trust decision is durable when addTrusted returns.
    assert.ok(store.addTrusted({ node_id: 7, public_key: 'AAAA', hostname: 'x', approved_at: new Date().toISOString(), mutual: true }).ok);
    assert.ok(JSON.parse(readFileSync(path, 'utf8')).trusted.some((t: { node_id: number }) => t.node_id === 7));
  } finally {
    done();
  }
});
