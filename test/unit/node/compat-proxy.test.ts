// Proxy URLs and NO_PROXY rules (src/node/compat/proxy.ts), and how daemon-options picks them up.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isNoProxy, parseNoProxy, parseProxyUrl, proxyFor } from '../../../src/node/compat/proxy.js';
import { parseDaemonAddresses, parseDaemonArgs } from '../../../src/node/daemon-options.js';

describe('compat proxy', () => {
  it('parses http URLs with and without credentials; the display hides the password', () => {
    const a = parseProxyUrl('http://alice:s%40cret@proxy.corp:3128');
    assert.ok(a.ok);
    assert.equal(a.value.host, 'proxy.corp');
    assert.equal(a.value.port, 3128);
    assert.equal(a.value.authorization, `Basic ${Buffer.from('alice:s@cret').toString('base64')}`);
    assert.equal(a.value.display, 'http://alice@proxy.corp:3128');
    const b = parseProxyUrl('10.0.0.1:8080');
    assert.ok(b.ok);
    assert.equal(b.value.authorization, null);
    assert.equal(b.value.display, 'http://10.0.0.1:8080');
    const c = parseProxyUrl('http://proxy');
    assert.ok(c.ok && c.value.port === 80);
    for (const bad of ['https://proxy:443', 'socks5://p:1080', 'http://p:3128/path', 'http://', '::::']) {
      const r = parseProxyUrl(bad);
      assert.ok(!r.ok, bad);
      assert.equal(r.error.code, 'invalid_argument');
    }
  });

  it('NO_PROXY: *, exact host, .suffix and suffix, host:port', () => {
    const rules = parseNoProxy('localhost, .internal.corp,example.com 10.1.2.3:443');
    assert.ok(isNoProxy(rules, 'localhost', 443));
    assert.ok(isNoProxy(rules, 'a.internal.corp', 443));
    assert.ok(isNoProxy(rules, 'internal.corp', 443));
    assert.ok(isNoProxy(rules, 'example.com', 1));
    assert.ok(isNoProxy(rules, 'www.example.com', 1));
    assert.ok(!isNoProxy(rules, 'notexample.com', 1));
    assert.ok(isNoProxy(rules, '10.1.2.3', 443));
    assert.ok(!isNoProxy(rules, '10.1.2.3', 8443));
    assert.ok(isNoProxy(parseNoProxy('*'), 'anything', 1));
    assert.deepEqual(parseNoProxy(''), []);
    const p = parseProxyUrl('http://p:1');
    assert.ok(p.ok);
    assert.equal(proxyFor(p.value, rules, 'rdv.example.org', 443), p.value);
    assert.equal(proxyFor(p.value, rules, 'localhost', 443), null);
    assert.equal(proxyFor(null, [], 'x', 1), null);
  });

  it('daemon options: flag > HTTPS_PROXY > https_proxy; NO_PROXY; --compat default; bad values refused', () => {
    const home = mkdtempSync(join(tmpdir(), 'pi-opt-'));
    try {
      const env = { HTTPS_PROXY: 'http://env:3128', https_proxy: 'http://lower:3128', NO_PROXY: 'localhost' };
      const a = parseDaemonArgs(['--home', home, '--registry', 'rdv.example.org:9000'], env);
      assert.ok(a.ok);
      assert.equal(a.value.transport, 'auto');
      assert.equal(a.value.proxy, 'http://env:3128');
      const addrs = parseDaemonAddresses(a.value);
      assert.ok(addrs.ok);
      assert.deepEqual(addrs.value.compat, { host: 'rdv.example.org', port: 443 });
      assert.equal(addrs.value.proxy?.host, 'env');
      assert.ok(isNoProxy(addrs.value.noProxy, 'localhost', 443));
      const b = parseDaemonArgs(['--home', home, '--proxy', 'http://flag:1', '--transport', 'tcp', '--compat', ':8443', '--registry-fingerprint', 'ab'.repeat(32)], env);
      assert.ok(b.ok);
      assert.equal(b.value.proxy, 'http://flag:1');
      const bAddrs = parseDaemonAddresses(b.value);
      assert.ok(bAddrs.ok);
      assert.deepEqual(bAddrs.value.compat, { host: '127.0.0.1', port: 8443 });
      assert.equal(bAddrs.value.registryFingerprint, 'AB:'.repeat(31) + 'AB');
      const c = parseDaemonArgs(['--home', home], { https_proxy: 'http://lower:3128' });
      assert.ok(c.ok && c.value.proxy === 'http://lower:3128');
      for (const bad of [['--transport', 'quic'], ['--compat', 'nope'], ['--proxy', 'ftp://x:1'], ['--registry-fingerprint', 'xyz'], ['--transport', 'tcp', '--no-relay']]) {
        const r = parseDaemonArgs(['--home', home, ...bad], {});
        assert.ok(!r.ok, bad.join(' '));
        assert.equal(r.error.code, 'invalid_argument');
      }
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
