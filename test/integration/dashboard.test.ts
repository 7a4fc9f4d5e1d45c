// The rendezvous's dashboard against a running rendezvous with daemons (issue 16): the figures the daemons report
// (NAT type, peer paths, transport) reach /api/stats, /metrics says the same, and headless Chromium (Debian's
// `chromium`, driven by playwright-core) shows exactly the API's figures; a screenshot goes to test-results/.
import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Cluster, waitFor } from './harness.js';

const TOKEN = 'integration-dashboard-token-0123';
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p)) ?? null;
const bearer = { authorization: `Bearer ${TOKEN}` };

test('dashboard: a rendezvous with two trusting daemons — API, metrics and a real browser agree', { timeout: 90_000 }, async (t) => {
  const c = await Cluster.start('dash', ['alpha', 'beta'], {
    rendezvousArgs: ['--dashboard-addr', '127.0.0.1:0', '--admin-token', TOKEN],
    daemonFlags: ['--keepalive', '1s'],
  });
  try {
    const base = `http://${c.rendezvous!.dashboard}`;
    await c.trust('alpha', 'beta');
    const echo = await c.ok('alpha', ['ping', 'beta', '--count', '2']);
    assert.ok(echo.results?.length >= 1);
    // Each daemon reports its NAT type (loopback classifies as a public address) and its peer paths.
    const stats = await waitFor(
      'both daemons reporting a direct peer',
      async () => {
        const s = (await (await fetch(`${base}/api/stats`, { headers: bearer })).json()) as any;
        const reported = Object.values(s.nat_types as Record<string, number>).reduce((a, b) => a + b, 0);
        return reported === 2 && s.paths.direct >= 2 ? s : null;
      },
      30_000,
      250,
    );
    assert.equal(stats.nodes.registered, 2);
    assert.equal(stats.nodes.online, 2);
    assert.deepEqual(stats.transports, { udp: 2 });
    assert.ok(stats.trust.edges >= 2);
    assert.ok(stats.trust.pushes >= 1, 'the handshake was pushed');
    assert.ok(stats.events.some((e: any) => e.kind === 'request_handshake'), JSON.stringify(stats.events));
    const metrics = await (await fetch(`${base}/metrics`, { headers: bearer })).text();
    assert.match(metrics, /^pilot_nodes_online 2$/m);
    assert.match(metrics, /^pilot_transport_nodes\{transport="udp"\} 2$/m);
    assert.equal((await fetch(`${base}/api/stats`)).status, 401);

    if (!CHROMIUM) {
      t.diagnostic('chromium not installed: the browser half is skipped (apt-get install chromium)');
      return;
    }
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`${base}/?token=${TOKEN}`);
      await page.waitForSelector('#state.live', { timeout: 10_000 });
      await page.waitForFunction("document.querySelectorAll('.uplot').length === 3", undefined, { timeout: 10_000 });
      await page.waitForTimeout(1500);
      const api = (await (await fetch(`${base}/api/stats`, { headers: bearer })).json()) as any;
      const shown: Array<[string, string | null]> = await page.$$eval('[data-figure]', (els: any[]) => els.map((e) => [e.dataset.figure, e.dataset.value ?? null]));
      for (const [path, value] of shown) {
        // Figures that move between the page's last tick and our fetch (requests, relay counters, pushes) are
        // compared by presence; the node and trust figures must be equal.
        const want = path.split('.').reduce((o: any, k: string) => (o == null ? o : o[k]), api);
        if (/^(registry|relay|trust\.pushes|paths)/.test(path)) assert.equal(value === null, want == null, `figure ${path}`);
        else assert.equal(value, want == null ? null : String(want), `figure ${path}`);
      }
      const natRows: string[] = await page.$$eval('#nat tr[data-nat-type]', (rs: any[]) => rs.map((r) => r.dataset.natType));
      assert.deepEqual(natRows, Object.keys(api.nat_types).sort());
      const dir = resolve(process.cwd(), 'test-results');
      mkdirSync(dir, { recursive: true });
      await page.screenshot({ path: join(dir, 'dashboard-live.png'), fullPage: true });
    } finally {
      await browser.close();
    }
  } finally {
    await c.close();
  }
});
