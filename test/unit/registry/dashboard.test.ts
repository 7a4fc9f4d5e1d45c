import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { silentLogger } from '../../../src/core/logger.js';
import { RegistryClient } from '../../../src/node/registry-client.js';
import { Dashboard, type BeaconFigures, type DashboardSource } from '../../../src/registry/dashboard.js';
import { signDetached } from '../../../src/registry/signature.js';
import { RawClient, fresh, newIdentity, registerOurs, startServer } from './helpers.js';

const TOKEN = 'test-admin-token-0123456789';
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p)) ?? null;

async function setup() {
  const { server, port } = await startServer();
  const beacon: BeaconFigures = { discovers: 4, punches: 1, relayed: 10, relayDropped: 0, rateLimited: 0, relayedBytes: 12_345 };
  const source: DashboardSource = {
    registry: () => server.dashboardStats(),
    onEvent: (fn) => server.onEvent(fn),
    beacon: () => beacon,
    reports: () => ({ natTypes: { 'full-cone': 1, symmetric: 1 }, paths: { direct: 3, relayed: 1 } }),
  };
  const d = Dashboard.create({ source, adminToken: TOKEN, logger: silentLogger(), liveIntervalMs: 100 });
  assert.ok(d.ok);
  const addr = await d.value.listen('127.0.0.1', 0);
  assert.ok(addr.ok);
  const base = `http://127.0.0.1:${addr.value.port}`;
  const clients: RegistryClient[] = [];
  const join_ = async (hostname: string) => {
    const id = newIdentity();
    const c = new RegistryClient({ registryAddr: `127.0.0.1:${port}`, sign: (m) => signDetached(id.secretKey, m), requestTimeoutMs: 2000 });
    clients.push(c);
    assert.ok((await c.connect()).ok);
    const r = await c.register('127.0.0.1:5001', id.publicKey);
    assert.ok(r.ok);
    assert.ok((await c.setHostname(hostname)).ok);
    return { c, nodeId: r.value.nodeId };
  };
  return {
    base,
    beacon,
    join: join_,
    dashboard: d.value,
    async close() {
      for (const c of clients) await c.close();
      await d.value.close();
      await server.close();
    },
  };
}

const bearer = { authorization: `Bearer ${TOKEN}` };

test('dashboard: every path needs the admin token; /?token= sets the cookie and leaves the URL', async () => {
  const t = await setup();
  try {
    for (const p of ['/', '/api/stats', '/metrics', '/api/events', '/uplot.js']) {
      const r = await fetch(t.base + p);
      assert.equal(r.status, 401, p);
      assert.equal(((await r.json()) as { error: string }).error, 'unauthorized');
      assert.equal((await fetch(t.base + p, { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status, 401, p);
    }
    assert.equal((await fetch(`${t.base}/?token=nope`, { redirect: 'manual' })).status, 401);
    const r = await fetch(`${t.base}/?token=${TOKEN}`, { redirect: 'manual' });
    assert.equal(r.status, 303);
    assert.equal(r.headers.get('location'), '/');
    const cookie = r.headers.get('set-cookie')!;
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    const page = await fetch(`${t.base}/`, { headers: { cookie: cookie.split(';')[0]! } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /data-figure="nodes.online"/);
    assert.equal((await fetch(`${t.base}/uplot.js`, { headers: bearer })).status, 200, 'uPlot is served');
    assert.equal((await fetch(`${t.base}/nope`, { headers: bearer })).status, 404);
    assert.equal((await fetch(`${t.base}/api/stats`, { method: 'POST', headers: bearer })).status, 405);
    assert.equal(Dashboard.create({ source: {} as DashboardSource, adminToken: 'short', logger: silentLogger() }).ok, false);
  } finally {
    await t.close();
  }
});

test('dashboard: /api/stats and /metrics tell the same figures; SSE pushes stats and registry events', async () => {
  const t = await setup();
  try {
    await t.join('alpha');
    await t.join('beta');
    const s = (await (await fetch(`${t.base}/api/stats`, { headers: bearer })).json()) as Record<string, any>;
    assert.equal(s.nodes.registered, 2);
    assert.equal(s.nodes.online, 2);
    assert.equal(s.relay.bytes, 12_345);
    assert.equal(s.paths.relayed_pct, 25);
    assert.deepEqual(s.nat_types, { 'full-cone': 1, symmetric: 1 });
    assert.ok(s.events.some((e: { kind: string; hostname: string }) => e.kind === 'set_hostname' && e.hostname === 'beta'), JSON.stringify(s.events));
    const m = await (await fetch(`${t.base}/metrics`, { headers: bearer })).text();
    assert.match(m, /^pilot_nodes_registered 2$/m);
    assert.match(m, /^pilot_relay_bytes_total 12345$/m);
    assert.match(m, /^pilot_nat_type_nodes\{nat_type="symmetric"\} 1$/m);
    assert.match(m, /^# TYPE pilot_relay_packets_total counter$/m);
    for (const line of m.trim().split('\n')) assert.match(line, /^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? -?[\d.e+]+)$/, line);

    const ac = new AbortController();
    const res = await fetch(`${t.base}/api/events`, { headers: bearer, signal: ac.signal });
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body!.getReader();
    let text = '';
    const until = async (pred: () => boolean) => {
      const deadline = Date.now() + 5000;
      while (!pred() && Date.now() < deadline) text += new TextDecoder().decode((await reader.read()).value ?? new Uint8Array());
      assert.ok(pred(), text.slice(-500));
    };
    await until(() => text.includes('event: stats'));
    await t.join('gamma');
    await until(() => /event: event\ndata: \{[^\n]*"hostname":"gamma"/.test(text));
    ac.abort();
  } finally {
    await t.close();
  }
});

test('dashboard: a real browser shows the figures the API gives (headless Chromium)', { skip: CHROMIUM ? false : 'chromium not installed (apt-get install chromium)' }, async () => {
  const { chromium } = await import('playwright-core');
  const t = await setup();
  const browser = await chromium.launch({ executablePath: CHROMIUM!, args: ['--no-sandbox'], headless: true });
  try {
    await t.join('alpha');
    await t.join('beta');
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${t.base}/?token=${TOKEN}`);
    await page.waitForSelector('#state.live', { timeout: 10_000 });
    await page.waitForFunction("document.querySelectorAll('.uplot').length === 3", undefined, { timeout: 10_000 });
    // Several stats ticks so the charts have points, then compare figure by figure with the API.
    await page.waitForTimeout(600);
    t.beacon.relayedBytes! += 2_000_000;
    await page.waitForTimeout(400);
    const api = (await (await fetch(`${t.base}/api/stats`, { headers: bearer })).json()) as Record<string, any>;
    const shown: Array<[string, string | null]> = await page.$$eval('[data-figure]', (els: any[]) => els.map((e) => [e.dataset.figure, e.dataset.value ?? null]));
    assert.ok(shown.length >= 12);
    for (const [path, value] of shown) {
      const want = path.split('.').reduce((o: any, k: string) => (o == null ? o : o[k]), api);
      if (path === 'registry.requests' || path === 'registry.connections') continue; // our own fetches move them
      assert.equal(value, want == null ? null : String(want), `figure ${path}`);
    }
    assert.deepEqual(await page.$$eval('#nat tr[data-nat-type]', (rs: any[]) => rs.map((r) => r.dataset.natType)), ['full-cone', 'symmetric']);
    assert.ok((await page.$$eval('#events tr', (rs) => rs.length)) > 2, 'recent events listed');
    const dir = resolve(process.cwd(), 'test-results');
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, 'dashboard.png'), fullPage: true });
  } finally {
    await browser.close();
    await t.close();
  }
});

test('registry: heartbeat self-reports (our extension) are summed over online nodes; malformed ones are ignored', async () => {
  const { challenge } = await import('../../../src/wire/registry-frame.js');
  const { server, port } = await startServer();
  const conns: RawClient[] = [];
  try {
    const beat = async (report: unknown) => {
      const id = newIdentity();
      const c = await RawClient.connect(port);
      conns.push(c);
      const nodeId = await registerOurs(c, id);
      const r = await c.request(fresh(id, { type: 'heartbeat', node_id: nodeId, report }, challenge.heartbeat(nodeId)));
      assert.equal(r.type, 'heartbeat_ok');
    };
    await beat({ nat_type: 'port-restricted-cone', peers_direct: 3, peers_relayed: 1, transport: 'udp' });
    await beat({ nat_type: 'symmetric', peers_direct: 0, peers_relayed: 2, transport: 'wss' });
    await beat({ nat_type: 'Not A Type!', peers_direct: 9 });
    await beat('nonsense');
    const r = server.nodeReports();
    assert.deepEqual(r.natTypes, { 'port-restricted-cone': 1, symmetric: 1 });
    assert.deepEqual(r.paths, { direct: 3, relayed: 3 });
    assert.deepEqual(r.transports, { udp: 1, wss: 1 });
  } finally {
    for (const c of conns) c.close();
    await server.close();
  }
});
