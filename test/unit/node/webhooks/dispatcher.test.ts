// src/node/webhooks/dispatcher.ts with a real HTTP receiver on loopback: posts the node's events with the
// signature, keeps the config and the queue in the home across a new dispatcher (a restart), backs off on
// failure without blocking the emitter, and set/clear keep the secret out of the status.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, seedFromEnv } from '../../../../src/core/rng.js';
import { silentLogger } from '../../../../src/core/logger.js';
import { realEnv } from '../../../../src/node/env.js';
import { Driver } from '../../../../src/node/driver.js';
import { NodeEvents } from '../../../../src/node/events.js';
import { WebhookDispatcher } from '../../../../src/node/webhooks/dispatcher.js';
import { webhookConfigPath, webhookQueuePath } from '../../../../src/node/webhooks/config.js';

const seed = seedFromEnv();
const SECRET = 'unit-secret-0123456789';

async function receiver(status: () => number): Promise<{ server: Server; url: string; bodies: { raw: string; sig: string }[] }> {
  const bodies: { raw: string; sig: string }[] = [];
  const server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => {
      bodies.push({ raw, sig: String(req.headers['x-pilot-signature'] ?? '') });
      res.writeHead(status()).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/h`, bodies };
}

function setup(home: string): { d: WebhookDispatcher; events: NodeEvents; driver: Driver } {
  const env = realEnv();
  const driver = new Driver(env.clock, env.timers);
  const events = new NodeEvents(() => env.wall.nowMs());
  const d = new WebhookDispatcher({
    home,
    events,
    driver,
    wall: env.wall,
    rng: new Rng(seed),
    logger: silentLogger(),
    flagTarget: null,
    node: () => ({ node_id: 42, address: '0:0000.0000.002A' }),
    userAgent: 'pilot-node/test',
    queue: { backoffBaseMs: 50, backoffMaxMs: 200 },
  });
  return { d, events, driver };
}

async function until(what: string, fn: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (seed ${seed})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('posts signed events; a 503 is retried; the queue and config survive a new dispatcher; clear forgets both', async () => {
  const home = mkdtempSync(join(tmpdir(), 'pi-wh-'));
  let code = 503;
  const rx = await receiver(() => code);
  try {
    const a = setup(home);
    const set = a.d.setWebhook(rx.url, SECRET, null);
    assert.ok(set.ok);
    assert.ok(!JSON.stringify(set.value).includes(SECRET), 'status never holds the secret');
    assert.equal(statSync(webhookConfigPath(home)).mode & 0o777, 0o600);
    const t0 = performance.now();
    a.events.emit({ type: 'peer.connected', data: { node_id: 7, path: 'direct', transport: 'udp' } });
    assert.ok(performance.now() - t0 < 50, 'emit returns at once (no I/O in the emitter)');
    await until('retries against the 503', () => a.d.status().failed_attempts >= 2);
    assert.equal(a.d.status().last_error, 'HTTP 503');
    assert.equal(a.d.status().queued, 1);
    // A "restart": close (the budget ends as the receiver keeps failing), then a new dispatcher on the same home.
    code = 500;
    await a.d.close(300);
    a.driver.close();
    const saved = JSON.parse(readFileSync(webhookQueuePath(home), 'utf8'));
    assert.equal(saved.events.length, 1);
    code = 200;
    const before = rx.bodies.length;
    const b = setup(home);
    assert.equal(b.d.status().configured, true);
    assert.equal(b.d.status().source, 'config');
    await until('delivery after the restart', () => b.d.status().delivered === 1);
    const got = rx.bodies.slice(before);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.sig, 'sha256=' + createHmac('sha256', SECRET).update(got[0]!.raw).digest('hex'));
    const body = JSON.parse(got[0]!.raw);
    assert.equal(body.type, 'peer.connected');
    assert.equal(body.node_id, 42);
    assert.equal(body.id, saved.events[0].id, 'the same event id as before the restart');
    assert.equal(got[0]!.raw, rx.bodies[0]!.raw, 'the same bytes as the first attempt');
    const cl = b.d.clearWebhook();
    assert.deepEqual(cl, { ok: true, value: { cleared: true, dropped: 0 } });
    b.events.emit({ type: 'daemon.stopping', data: { reason: 'test' } });
    assert.equal(b.d.status().queued, 0, 'no target, nothing queued');
    await b.d.close(0);
    b.driver.close();
    const c = setup(home);
    assert.equal(c.d.status().configured, false, 'clear-webhook survives too');
    await c.d.close(0);
    c.driver.close();
  } finally {
    rx.server.close();
    rmSync(home, { recursive: true, force: true });
  }
});

test('a receiver that never answers is cut off by the request timeout', async () => {
  const home = mkdtempSync(join(tmpdir(), 'pi-wh-'));
  const server = createServer(() => undefined); // never answers
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const env = realEnv();
    const driver = new Driver(env.clock, env.timers);
    const events = new NodeEvents(() => env.wall.nowMs());
    const d = new WebhookDispatcher({
      home, events, driver, wall: env.wall, rng: new Rng(seed), logger: silentLogger(), flagTarget: { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, secret: null, events: null },
      node: () => ({ node_id: 1, address: null }), userAgent: 't', requestTimeoutMs: 200, queue: { backoffBaseMs: 5000 },
    });
    assert.equal(d.status().source, 'flag');
    events.emit({ type: 'daemon.started', data: { node_id: 1, address: null, version: 't' } });
    await until('a timeout', () => d.status().failed_attempts >= 1);
    assert.match(d.status().last_error ?? '', /no answer within 200 ms/);
    assert.ok(d.status().next_attempt_at !== null);
    await d.close(0);
    driver.close();
  } finally {
    server.closeAllConnections();
    server.close();
    rmSync(home, { recursive: true, force: true });
  }
});
