// Webhooks over https (node:https with Node's certificate checks): a receiver whose certificate is not trusted
// is refused (the failure names the certificate), and one whose CA the process trusts (NODE_EXTRA_CA_CERTS, read
// at process start — so in a child process) takes the signed POST.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import selfsigned from 'selfsigned';
import { realEnv } from '../../../../src/node/env.js';
import { Driver } from '../../../../src/node/driver.js';
import { postJson } from '../../../../src/node/webhooks/dispatcher.js';

const pems = selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
  days: 2,
  keySize: 2048,
  algorithm: 'sha256',
  extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
});

async function httpsReceiver(): Promise<{ url: string; bodies: string[]; close(): void }> {
  const bodies: string[] = [];
  const s = createServer({ key: pems.private, cert: pems.cert }, (req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString('utf8')));
    req.on('end', () => {
      bodies.push(raw);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return { url: `https://127.0.0.1:${(s.address() as AddressInfo).port}/hook`, bodies, close: () => s.close() };
}

test('https: an untrusted certificate is refused, with the reason', async () => {
  const rx = await httpsReceiver();
  const env = realEnv();
  const driver = new Driver(env.clock, env.timers);
  try {
    const r = await postJson({ eventId: 'e', url: rx.url, headers: { 'content-type': 'application/json' }, body: '{}' }, 10_000, driver);
    assert.ok('error' in r, JSON.stringify(r));
    assert.match(r.error, /SELF_SIGNED|self.signed|certificate/i);
    assert.equal(rx.bodies.length, 0);
  } finally {
    driver.close();
    rx.close();
  }
});

test('https: a receiver whose CA is trusted takes the POST', async () => {
  const rx = await httpsReceiver();
  const dir = mkdtempSync(join(tmpdir(), 'pi-whs-'));
  try {
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, pems.cert);
    const isTs = import.meta.url.endsWith('.ts');
    const ext = isTs ? '.ts' : '.js';
    const mod = (p: string) => fileURLToPath(new URL(`../../../../src/${p}${ext}`, import.meta.url));
    const script = `
      const { postJson } = await import(${JSON.stringify(mod('node/webhooks/dispatcher'))});
      const { Driver } = await import(${JSON.stringify(mod('node/driver'))});
      const { realEnv } = await import(${JSON.stringify(mod('node/env'))});
      const env = realEnv();
      const d = new Driver(env.clock, env.timers);
      const r = await postJson({ eventId: 'e', url: ${JSON.stringify(rx.url)}, headers: { 'content-type': 'application/json' }, body: '{"type":"daemon.started"}' }, 10000, d);
      d.close();
      process.stdout.write(JSON.stringify(r));`;
    const args = [...(isTs ? ['--import', import.meta.resolve('tsx')] : []), '--input-type=module', '-e', script];
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, args, { env: { ...process.env, NODE_EXTRA_CA_CERTS: ca }, timeout: 60_000 }, (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout))),
    );
    assert.deepEqual(JSON.parse(out), { status: 204 });
    assert.deepEqual(rx.bodies, ['{"type":"daemon.started"}']);
  } finally {
    rx.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
