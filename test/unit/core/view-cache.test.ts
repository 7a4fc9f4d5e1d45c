import test from 'node:test';
import assert from 'node:assert/strict';
import { ViewCache, MIN_CACHED_BUFFER_BYTES } from '../../../src/core/view-cache.js';

test('ViewCache hands out the same view for the same region of a large buffer, a new one for any other region', () => {
  const ring = new Uint8Array(1 << 20);
  const slot = ring.subarray(65536, 131072); // views are asked for through a slot of the ring, as the datapath's batches do
  const c = new ViewCache();
  const a = c.view(slot, 16, 1468);
  assert.equal(a.byteOffset, 65536 + 16);
  assert.equal(a.length, 1452);
  assert.equal(c.view(slot, 16, 1468), a, 'same region: the cached view');
  assert.notEqual(c.view(slot, 16, 1000), a, 'another length: a new view');
  const b = c.view(slot, 16, 1000);
  assert.equal(b.length, 984);
  ring[65536 + 16] = 7;
  assert.equal(b[0], 7, 'a view, not a copy');
  const far = c.view(ring, 5000, 6000);
  assert.equal(far.byteOffset, 5000);
  assert.equal(c.view(ring, 5000, 6000), far);
});

test('ViewCache never keeps views of small (per-packet) buffers; two rings keep their own views', () => {
  const c = new ViewCache();
  const packet = new Uint8Array(MIN_CACHED_BUFFER_BYTES - 1);
  const v1 = c.view(packet, 0, 100);
  assert.notEqual(c.view(packet, 0, 100), v1, 'small buffer: a fresh view each time');
  const ring1 = new Uint8Array(MIN_CACHED_BUFFER_BYTES);
  const r1 = c.view(ring1, 0, 100);
  assert.equal(c.view(ring1, 0, 100), r1);
  const ring2 = new Uint8Array(MIN_CACHED_BUFFER_BYTES);
  const r2 = c.view(ring2, 0, 100);
  assert.equal(r2.buffer, ring2.buffer, 'the other ring');
  assert.equal(c.view(ring1, 0, 100), r1, 'two nodes in one process (two rings) do not evict each other');
  assert.equal(c.view(ring2, 0, 100), r2);
});
