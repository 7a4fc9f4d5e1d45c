// dialFirstOf (src/node/compat/first-of.ts): one registry connect attempt over plain TCP and TLS (happy eyeballs).
// The second route starts when the first fails or after the head start; the first to connect wins, a later one is
// disposed of; all failing gives the first route's error with the others' messages appended.
import test from 'node:test';
import assert from 'node:assert/strict';
import { err, ok, type Result } from '../../../src/core/result.js';
import { dialFirstOf } from '../../../src/node/compat/first-of.js';

/** Manual timers: `fire()` runs the head-start callbacks that are due. */
function manualTimers() {
  const pending = new Set<() => void>();
  return {
    after: (_ms: number, fn: () => void) => {
      pending.add(fn);
      return { cancel: () => pending.delete(fn) };
    },
    fire: () => {
      for (const fn of [...pending]) {
        pending.delete(fn);
        fn();
      }
    },
    get count() {
      return pending.size;
    },
  };
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  const p = new Promise<T>((r) => (resolve = r));
  return { p, resolve };
}

const tick = () => new Promise((r) => setImmediate(r));

test('first-of: the first route connects → the second never starts', async () => {
  const t = manualTimers();
  const started: string[] = [];
  const r = await dialFirstOf({
    routes: ['plain', 'tls'],
    dial: async (route) => (started.push(route), ok(`conn-${route}`)),
    dispose: () => assert.fail('nothing to dispose'),
    headStartMs: 500,
    after: t.after,
  });
  assert.ok(r.ok);
  assert.deepEqual(r.value, { route: 'plain', value: 'conn-plain' });
  assert.deepEqual(started, ['plain']);
  assert.equal(t.count, 0, 'the head-start timer is cancelled');
});

test('first-of: the first fails at once → the second starts without waiting for the head start, and wins', async () => {
  const t = manualTimers();
  const started: string[] = [];
  const r = await dialFirstOf({
    routes: ['plain', 'tls'],
    dial: async (route) => (started.push(route), route === 'plain' ? err('connection_failed', 'registry 127.0.0.1:9000: ECONNREFUSED') : ok('tls-conn')),
    dispose: () => assert.fail('nothing to dispose'),
    headStartMs: 500,
    after: t.after,
  });
  assert.ok(r.ok);
  assert.equal(r.value.route, 'tls');
  assert.deepEqual(started, ['plain', 'tls']);
});

test('first-of: the first hangs → the second starts at the head start and wins; the first connecting later is disposed of', async () => {
  const t = manualTimers();
  const plain = deferred<Result<string>>();
  const disposed: string[] = [];
  const started: string[] = [];
  const p = dialFirstOf({
    routes: ['plain', 'tls'],
    dial: (route) => (started.push(route), route === 'plain' ? plain.p : Promise.resolve(ok('tls-conn'))),
    dispose: (v) => disposed.push(v),
    headStartMs: 500,
    after: t.after,
  });
  await tick();
  assert.deepEqual(started, ['plain']);
  t.fire();
  const r = await p;
  assert.ok(r.ok);
  assert.equal(r.value.route, 'tls');
  plain.resolve(ok('late-plain'));
  await tick();
  assert.deepEqual(disposed, ['late-plain']);
});

test('first-of: every route fails → the first route\'s code and hint, both messages', async () => {
  const t = manualTimers();
  const r = await dialFirstOf({
    routes: ['plain', 'tls'],
    dial: async (route) =>
      route === 'plain'
        ? err('connection_failed', 'registry 127.0.0.1:9000: ECONNREFUSED', { hint: 'start a rendezvous' })
        : err('proxy_failed', 'compat 127.0.0.1:443: ECONNREFUSED'),
    dispose: () => undefined,
    headStartMs: 500,
    after: t.after,
  });
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'connection_failed');
  assert.equal(r.error.hint, 'start a rendezvous');
  assert.equal(r.error.message, 'registry 127.0.0.1:9000: ECONNREFUSED; compat 127.0.0.1:443: ECONNREFUSED');
});

test('first-of: one route is one dial', async () => {
  const t = manualTimers();
  const r = await dialFirstOf({ routes: ['tls'], dial: async () => ok(1), dispose: () => undefined, headStartMs: 500, after: t.after });
  assert.ok(r.ok);
  assert.equal(t.count, 0);
});

test('first-of: a dialer that throws or rejects is a failed route (the other one still runs)', async () => {
  const t = manualTimers();
  const r = await dialFirstOf<string, string>({
    routes: ['plain', 'tls'],
    dial: (route) => {
      if (route === 'plain') throw new Error('EINVAL');
      return Promise.reject(new Error('tls exploded'));
    },
    dispose: () => undefined,
    headStartMs: 500,
    after: t.after,
  });
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'internal');
  assert.match(r.error.message, /EINVAL.*tls exploded/);
});
