// Webhooks through pilotctl with real daemons (issue 14): a real HTTP receiver (node:http) that checks every
// delivery's HMAC over the raw body; a receiver that is down and then up gets the queued events after retries;
// the queue survives a daemon restart; a bounded queue's overflow is counted and visible in `webhook status`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, explain, waitFor, type JsonRun } from './harness.js';

const SECRET = 'integration-secret-0123456789abcdef';

interface Delivery {
  headers: IncomingHttpHeaders;
  raw: Buffer;
  body: { id: string; type: string; time: string; node_id: number; address: string | null; data: Record<string, unknown> };
  isSignatureValid: boolean;
}

/** An HTTP receiver that verifies X-Pilot-Signature (as docs/webhooks.md shows) and can go down and up on one port. */
class Receiver {
  readonly deliveries: Delivery[] = [];
  private server: Server | null = null;
  port = 0;
  constructor(private readonly secret: string) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook?token=t0p`;
  }

  async up(): Promise<void> {
    const s = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const want = Buffer.from('sha256=' + createHmac('sha256', this.secret).update(raw).digest('hex'));
        const got = Buffer.from(String(req.headers['x-pilot-signature'] ?? ''));
        const isSignatureValid = got.length === want.length && timingSafeEqual(got, want);
        this.deliveries.push({ headers: req.headers, raw, body: JSON.parse(raw.toString('utf8')), isSignatureValid });
        res.writeHead(isSignatureValid ? 204 : 401).end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (s.address() as AddressInfo).port;
    this.server = s;
  }

  async down(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  of(type: string, nodeId?: number): Delivery[] {
    return this.deliveries.filter((d) => d.body.type === type && (nodeId === undefined || d.body.node_id === nodeId));
  }

  wait(what: string, fn: (ds: Delivery[]) => boolean, timeoutMs = 30_000): Promise<true> {
    return waitFor(what, () => fn(this.deliveries) || null, timeoutMs, 50);
  }
}

let c: Cluster;
let rx: Receiver;

function data(r: JsonRun): any {
  assert.equal(r.code, 0, explain(r));
  assert.equal(r.error, null, explain(r));
  return r.data;
}

before(async () => {
  rx = new Receiver(SECRET);
  await rx.up();
  c = await Cluster.start('hook', ['alpha', 'beta']);
});

after(async () => {
  await c?.close();
  await rx?.down();
});

test('set-webhook → signed deliveries of trust, peer, message and file events; status never shows the secret', { timeout: 120_000 }, async () => {
  const alpha = c.node('alpha');
  const beta = c.node('beta');
  const set = await c.json('alpha', ['set-webhook', rx.url, '--secret', SECRET]);
  const s = data(set);
  assert.equal(s.configured, true);
  assert.equal(s.secret_set, true);
  assert.equal(s.source, 'config');
  assert.equal(s.url, `http://127.0.0.1:${rx.port}/hook?token=***`, 'query values masked');
  assert.deepEqual(s.warnings, [], 'loopback http is not warned about');
  assert.ok(!set.stdout.includes(SECRET) && !set.stderr.includes(SECRET), 'the secret is never printed back');
  const text = await c.text('alpha', ['webhook', 'status']);
  assert.equal(text.code, 0, explain(text));
  assert.match(text.stdout, /secret:\s+set/);
  assert.ok(!text.stdout.includes(SECRET));

  // Trust: beta asks, alpha approves.
  data(await c.json('beta', ['handshake', String(alpha.nodeId), 'webhook test']));
  await rx.wait('trust.request_received', () => rx.of('trust.request_received').some((d) => d.body.data.node_id === beta.nodeId));
  const req = rx.of('trust.request_received')[0]!;
  assert.equal(req.body.data.justification, 'webhook test');
  assert.equal(req.body.data.hostname, 'beta');
  data(await c.json('alpha', ['approve', String(beta.nodeId)]));
  await rx.wait('trust.approved', () => rx.of('trust.approved').some((d) => d.body.data.node_id === beta.nodeId && d.body.data.by === 'local'));

  // A message and a file from beta.
  const m = data(await c.json('beta', ['send-message', 'alpha', '--data', 'hello hooks']));
  await rx.wait('message.received', () => rx.of('message.received').length >= 1);
  const msg = rx.of('message.received')[0]!.body.data;
  assert.equal(msg.from, beta.nodeId);
  assert.equal(msg.from_address, beta.address);
  assert.equal(msg.type, 'text');
  assert.equal(msg.size, Buffer.byteLength('hello hooks'));
  assert.ok(m !== null);
  const file = join(c.root, 'report.txt');
  writeFileSync(file, 'quarterly numbers\n');
  data(await c.json('beta', ['send-file', 'alpha', file]));
  await rx.wait('file.received', () => rx.of('file.received').length >= 1);
  const f = rx.of('file.received')[0]!.body.data;
  assert.equal(f.name, 'report.txt');
  assert.equal(f.size, 18);
  assert.equal(f.from, beta.nodeId);
  assert.match(String(f.sha256), /^[0-9a-f]{64}$/);
  await rx.wait('peer.connected', () => rx.of('peer.connected').some((d) => d.body.data.node_id === beta.nodeId));
  assert.ok(['direct', 'relay'].includes(String(rx.of('peer.connected')[0]!.body.data.path)));

  // Every delivery: a valid signature over the raw body, the id and time in headers as in the (signed) body.
  for (const d of rx.deliveries) {
    assert.ok(d.isSignatureValid, `bad signature on ${d.body.type}`);
    assert.equal(d.headers['x-pilot-event-id'], d.body.id);
    assert.equal(d.headers['x-pilot-event'], d.body.type);
    assert.equal(d.headers['x-pilot-timestamp'], String(Math.floor(Date.parse(d.body.time) / 1000)));
    assert.equal(d.headers['content-type'], 'application/json');
    assert.equal(d.body.node_id, alpha.nodeId);
  }
  assert.equal(new Set(rx.deliveries.map((d) => d.body.id)).size, rx.deliveries.length, 'event ids are unique');
  const st = data(await c.json('alpha', ['webhook', 'status']));
  assert.ok(st.delivered >= 5, `delivered ${st.delivered}`);
  assert.equal(st.queued, 0);

  // Untrust: trust.revoked and the peer's disconnection.
  data(await c.json('alpha', ['untrust', String(beta.nodeId)]));
  await rx.wait('trust.revoked', () => rx.of('trust.revoked').some((d) => d.body.data.by === 'local'));
  await rx.wait('peer.disconnected', () => rx.of('peer.disconnected').some((d) => d.body.data.node_id === beta.nodeId));
  // Trust again for the next tests.
  await c.trust('beta', 'alpha');
});

test('a receiver that is down gets the queued events, in order, once it is up again; failures show in status', { timeout: 120_000 }, async () => {
  await rx.down();
  const before = rx.deliveries.length;
  for (const n of [1, 2, 3]) data(await c.json('beta', ['send-message', 'alpha', '--data', `while down ${n}`]));
  const st = await waitFor('failed attempts in webhook status', async () => {
    const s = data(await c.json('alpha', ['webhook', 'status']));
    return s.failed_attempts >= 2 && s.queued >= 3 ? s : null;
  }, 30_000, 200);
  assert.match(st.last_error, /ECONNREFUSED/);
  assert.ok(st.consecutive_failures >= 2);
  const text = await c.text('alpha', ['webhook', 'status']);
  assert.match(text.stdout, /last error:\s+ECONNREFUSED/);
  await rx.up(); // same port
  await rx.wait('the three messages', () => rx.deliveries.slice(before).filter((d) => d.body.type === 'message.received').length >= 3, 60_000);
  const got = rx.deliveries.slice(before).filter((d) => d.body.type === 'message.received');
  const sizes = got.map((d) => d.body.data.size);
  assert.deepEqual(sizes, [12, 12, 12]);
  // Order kept: the ids' times do not go backwards.
  const times = rx.deliveries.slice(before).map((d) => Date.parse(d.body.time));
  assert.deepEqual([...times].sort((a, b) => a - b), times);
  assert.ok(got.every((d) => Number(d.headers['x-pilot-delivery-attempt']) >= 1));
  assert.ok(rx.deliveries.slice(before).some((d) => Number(d.headers['x-pilot-delivery-attempt']) >= 2), 'the first was retried');
  const after = await waitFor('queue empty', async () => {
    const s = data(await c.json('alpha', ['webhook', 'status']));
    return s.queued === 0 ? s : null;
  }, 30_000, 200);
  assert.equal(after.consecutive_failures, 0);
  assert.ok(after.last_delivered_at);
});

test('the queue and the webhook survive a daemon restart', { timeout: 120_000 }, async () => {
  await rx.down();
  const before = rx.deliveries.length;
  const sent = data(await c.json('beta', ['send-message', 'alpha', '--data', 'before the restart']));
  assert.ok(sent);
  await waitFor('queued', async () => (data(await c.json('alpha', ['webhook', 'status'])).queued >= 1 ? true : null), 30_000, 200);
  await c.restartDaemon('alpha');
  const st = data(await c.json('alpha', ['webhook', 'status']));
  assert.equal(st.configured, true, 'set-webhook survived the restart');
  assert.equal(st.source, 'config');
  assert.equal(st.secret_set, true);
  assert.ok(st.queued >= 3, `queued after restart: ${st.queued} (message, daemon.stopping, daemon.started)`);
  await rx.up();
  await rx.wait('the pre-restart message, daemon.stopping and daemon.started', (ds) => {
    const mine = ds.slice(before);
    return mine.some((d) => d.body.type === 'message.received' && d.body.data.size === 18) && mine.some((d) => d.body.type === 'daemon.stopping') && mine.some((d) => d.body.type === 'daemon.started');
  }, 60_000);
  const mine = rx.deliveries.slice(before);
  const order = mine.map((d) => d.body.type);
  assert.ok(order.indexOf('message.received') < order.indexOf('daemon.stopping'), order.join(' '));
  assert.ok(order.indexOf('daemon.stopping') < order.indexOf('daemon.started'), order.join(' '));
  assert.ok(mine.every((d) => d.isSignatureValid));
  const started = mine.find((d) => d.body.type === 'daemon.started')!.body.data;
  assert.equal(started.node_id, c.node('alpha').nodeId);
  assert.equal(typeof started.version, 'string');
});

test('--webhook flag, bounded queue: overflow counted and visible; http to a non-loopback host is warned about', { timeout: 120_000 }, async () => {
  await rx.down();
  const gamma = await c.startDaemon('gamma', ['--webhook', rx.url, '--webhook-secret', SECRET, '--webhook-queue-limit', '3', '--trust-auto-approve']);
  // daemon start hands the secret over by environment: the daemon's argv (what `ps` shows) does not hold it.
  assert.ok(!readFileSync(`/proc/${gamma.pid}/cmdline`, 'utf8').includes(SECRET), 'the secret is not in the daemon argv');
  const beta = await c.client('beta');
  const h = await beta.handshake(String(gamma.nodeId), 'overflow');
  assert.ok(h.ok);
  await waitFor('gamma trusts beta', async () => {
    const r = await beta.trusted();
    return r.ok && r.value.trusted.some((t) => t.node_id === gamma.nodeId);
  }, 20_000);
  for (let i = 0; i < 4; i++) data(await c.json('beta', ['send-message', 'gamma', '--data', `m${i}`]));
  const st = await waitFor('overflow counted', async () => {
    const s = data(await c.json('gamma', ['webhook', 'status']));
    return s.dropped_overflow >= 4 ? s : null;
  }, 30_000, 200);
  assert.equal(st.source, 'flag');
  assert.equal(st.secret_set, true);
  assert.equal(st.queue_limit, 3);
  assert.ok(st.queued <= 3);
  const text = await c.text('gamma', ['webhook', 'status']);
  assert.match(text.stdout, /queued:\s+\d of 3/);
  assert.match(text.stdout, /dropped:\s+\d+ \(queue full\)/);

  const w = data(await c.json('gamma', ['set-webhook', 'http://192.0.2.10/hook', '--events', 'trust.*,message.received']));
  assert.equal(w.source, 'config');
  assert.deepEqual(w.events, ['trust.*', 'message.received']);
  assert.equal(w.warnings.length, 1);
  assert.match(w.warnings[0], /not loopback/);
  const bad = await c.json('gamma', ['set-webhook', 'ftp://x/y']);
  assert.equal(bad.code, 2, explain(bad));
  const short = await c.json('gamma', ['set-webhook', 'https://x.example/h', '--secret', 'short']);
  assert.equal(short.code, 2, explain(short));
  const cl = data(await c.json('gamma', ['clear-webhook']));
  assert.equal(cl.cleared, true);
  const none = data(await c.json('gamma', ['webhook', 'status']));
  assert.equal(none.configured, false);
  assert.equal(none.queued, 0);
});
