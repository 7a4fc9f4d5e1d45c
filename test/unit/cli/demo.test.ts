// The demo needs the real daemon; here only its failure path: a clear step error and nothing left behind.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { pilotctl } from './helpers.js';

test('demo: a missing rendezvous fails its step clearly and cleans up the temp home', async () => {
  const before = new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('pilot-demo-')));
  const r = await pilotctl(['demo', '--bench-mb', '1'], { env: { PATH: process.env.PATH, PILOT_RENDEZVOUS_BIN: '/nonexistent/pilot-rendezvous.js' } });
  assert.equal(r.code, 1);
  assert.match(r.stdout, /• start pilot-rendezvous \.\.\. FAILED\n {4}not_found: pilot-rendezvous not found/);
  assert.match(r.stdout, /steps +0\/1 ok/);
  assert.match(r.stderr, /demo: 1 step\(s\) failed: start pilot-rendezvous/);
  const leftover = readdirSync(tmpdir()).filter((n) => n.startsWith('pilot-demo-') && !before.has(n));
  assert.deepEqual(leftover, []);
  const bad = await pilotctl(['demo', '--bench-mb', 'lots', '--json']);
  assert.equal(bad.code, 2);
});
