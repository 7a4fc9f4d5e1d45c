// The data plane's heap flag (src/core/heap-flags.ts): the daemon and pilotctl start with it, and the daemon's
// heap keeper collects only where it is set.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DATA_PLANE_HEAP_FLAGS, hasDataPlaneHeap, startHeapKeeper } from '../../../src/core/heap-flags.js';
import { daemonCommand } from '../../../src/cli/daemon-ctl.js';
import { binCommand } from '../../helpers/bins.js';

test('hasDataPlaneHeap sees an initial old space in the arguments, nothing else', () => {
  assert.equal(hasDataPlaneHeap(['--initial-old-space-size=64']), true);
  assert.equal(hasDataPlaneHeap(['--initial_old_space_size=128']), true);
  assert.equal(hasDataPlaneHeap(['--max-old-space-size=4096']), false);
  assert.equal(hasDataPlaneHeap([]), false);
});

test('pilotctl daemon start runs pilot-daemon with the heap flag, before the script', () => {
  const dir = mkdtempSync(join(tmpdir(), 'heap-flags-'));
  try {
    writeFileSync(join(dir, 'pilot-daemon.js'), '');
    const cmd = daemonCommand({ scriptPath: join(dir, 'pilotctl.js'), env: {} });
    assert.ok(cmd.ok);
    assert.deepEqual(cmd.value, [process.execPath, ...DATA_PLANE_HEAP_FLAGS, join(dir, 'pilot-daemon.js')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the pilot-daemon and pilotctl bins carry the flag in their shebang (an installed bin runs with it)', () => {
  for (const name of ['pilot-daemon', 'pilotctl'] as const) {
    const script = binCommand(name).at(-1)!;
    const first = readFileSync(script, 'utf8').split('\n', 1)[0]!;
    assert.equal(first, `#!/usr/bin/env -S node ${DATA_PLANE_HEAP_FLAGS.join(' ')}`, name);
  }
});

test('the heap keeper does nothing in a process without the flag', async () => {
  assert.equal(hasDataPlaneHeap(), false, 'the test runner starts bare');
  let calls = 0;
  const stop = await startHeapKeeper({ periodMs: 10, growthBytes: 1, onCollect: () => calls++ });
  await new Promise((r) => setTimeout(r, 60));
  stop();
  assert.equal(calls, 0);
});

test('with the flag, the keeper collects once the heap grew by its threshold, and not while it does not grow', () => {
  const mod = pathToFileURL(join(import.meta.dirname, '../../../src/core/heap-flags' + (import.meta.url.endsWith('.ts') ? '.ts' : '.js'))).href;
  const script = `
    const { startHeapKeeper } = await import(${JSON.stringify(mod)});
    const calls = [];
    const stop = await startHeapKeeper({ periodMs: 40, growthBytes: 4 << 20, onCollect: (before, after) => calls.push({ before, after }) });
    await new Promise((r) => setTimeout(r, 200));
    const quiet = calls.length;
    let junk = [];
    for (let i = 0; i < 200000; i++) junk.push({ i, s: 'x'.repeat(16) + i });
    junk = null; // garbage now: the keeper's gc() frees it
    await new Promise((r) => setTimeout(r, 300));
    stop();
    console.log(JSON.stringify({ quiet, calls }));
  `;
  const flags = [...DATA_PLANE_HEAP_FLAGS, ...(import.meta.url.endsWith('.ts') ? ['--import', 'tsx'] : [])];
  const out = JSON.parse(execFileSync(process.execPath, [...flags, '--input-type=module', '-e', script], { encoding: 'utf8' }).trim()) as {
    quiet: number;
    calls: Array<{ before: number; after: number }>;
  };
  assert.equal(out.quiet, 0, 'no collection while the heap does not grow');
  assert.ok(out.calls.length >= 1, 'collected after the growth');
  const c = out.calls[0]!;
  assert.ok(c.after < c.before - (4 << 20), `the collection freed the garbage (${c.before} -> ${c.after})`);
});
