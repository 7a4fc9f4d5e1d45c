// `pilotctl config get|set|unset|show` (and the old `config`, `config --set k=v`): values of known keys are
// checked with the daemon's own parsers, a config.json with a syntax error is reported as file:line:column and
// never overwritten, writes are atomic. Plus the JSON error locator (src/core/json-text.ts) against JSON.parse.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { findJsonSyntaxError, parseJsonObject } from '../../../src/core/json-text.js';
import { CONFIG_KEYS, configKey, parseConfigValue } from '../../../src/cli/config-cmd.js';
import { parseDaemonArgs } from '../../../src/node/daemon-options.js';
import { pilotctl } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'pilot-config-'));
test.after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
function freshHome(): string {
  const h = join(root, `h${n++}`);
  mkdirSync(h, { mode: 0o700 });
  return h;
}

type Doc = { status: string; data?: any; code?: string; message?: string; hint?: string; detail?: any };
async function cfg(home: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; doc: Doc; stdout: string; stderr: string }> {
  const r = await pilotctl(['--home', home, ...args, '--json'], { env });
  return { code: r.code, doc: r.json as Doc, stdout: r.stdout, stderr: r.stderr };
}

test('json locator: line and column of common mistakes', () => {
  const cases: Array<[string, number, number, RegExp]> = [
    ['{\n  "registry": "1.2.3.4:9000"\n  "beacon": "x"\n}', 3, 3, /comma is missing at the end of line 2/],
    ['{\n  "registry": "1.2.3.4:9000",\n}', 3, 1, /trailing comma before '}'/],
    ['{"a": }', 1, 7, /expected a value/],
    ["{'a': 1}", 1, 2, /double quotes/],
    ['{"a": tru}', 1, 7, /expected a value/],
    ['{"a": "b\n"}', 1, 9, /line break inside a string/],
    ['{"a": 1', 1, 8, /end of the file/],
    ['', 1, 1, /end of the file/],
    ['{} x', 1, 4, /after the end/],
    ['\uFEFF{}', 1, 1, /byte-order mark/],
    ['{"a": [1, 2,]}', 1, 13, /trailing comma before '\]'/],
    ['{"a": "\\q"}', 1, 8, /invalid escape/],
    ['{"a": 01}', 1, 8, /expected ',' or '}'/],
  ];
  for (const [text, line, column, re] of cases) {
    assert.throws(() => JSON.parse(text), SyntaxError, `JSON.parse accepts ${JSON.stringify(text)}`);
    const e = findJsonSyntaxError(text);
    assert.ok(e, JSON.stringify(text));
    assert.deepEqual([e.line, e.column], [line, column], `${JSON.stringify(text)}: ${e.reason}`);
    assert.match(e.reason, re, JSON.stringify(text));
  }
  const p = parseJsonObject('[1]', '/x/config.json');
  assert.ok(!p.ok && /not a JSON object \(it holds an array\)/.test(p.error.message));
});

test('json locator agrees with JSON.parse on valid documents and on mutated ones', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => findJsonSyntaxError(JSON.stringify(v, null, 2)) === null),
    { numRuns: 300 },
  );
  // Random edits of a valid document: the locator reports an error exactly when JSON.parse throws.
  const base = JSON.stringify({ registry: '10.0.0.5:9000', public: true, tags: ['a', 'b'], n: -1.5e3, x: null }, null, 2);
  fc.assert(
    fc.property(fc.nat(base.length), fc.nat(3), fc.constantFrom('', ',', '"', '}', ']', ':', 'x', '\n', '\\', "'", '{', '0'), (at, del, ins) => {
      const text = base.slice(0, at) + ins + base.slice(at + del);
      let isValid = true;
      try {
        JSON.parse(text);
      } catch {
        isValid = false;
      }
      return (findJsonSyntaxError(text) === null) === isValid;
    }),
    { numRuns: 2000 },
  );
});

test('config set/get/unset/show; flag spellings; sources env > file > default', async () => {
  const home = freshHome();
  const s = await cfg(home, ['config', 'set', 'registry', '192.168.1.10:9000']);
  assert.equal(s.code, 0, s.stderr);
  assert.deepEqual(s.doc.data, { key: 'registry', value: '192.168.1.10:9000', previous: null, config_path: join(home, 'config.json') });
  assert.equal((await cfg(home, ['config', 'set', 'log-level', 'debug'])).doc.data.key, 'log_level');
  assert.equal((await cfg(home, ['config', 'set', 'public', 'yes'])).doc.data.value, true);
  assert.equal((await cfg(home, ['config', 'set', 'inbox-max-messages', '500'])).doc.data.value, 500);
  assert.equal((await cfg(home, ['config', 'set', 'keepalive', '30s'])).doc.data.value, '30s');
  assert.deepEqual(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')), {
    registry: '192.168.1.10:9000', log_level: 'debug', public: true, inbox_max_messages: 500, keepalive: '30s',
  });
  assert.equal(statSync(join(home, 'config.json')).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(home).filter((f) => f.includes('.tmp')), [], 'no temp file left behind');

  const g = await cfg(home, ['config', 'get', 'registry']);
  assert.deepEqual(g.doc.data, { key: 'registry', value: '192.168.1.10:9000', source: 'file', config_path: join(home, 'config.json') });
  const gt = await pilotctl(['--home', home, 'config', 'get', 'registry']);
  assert.equal(gt.stdout, '192.168.1.10:9000\n', 'text mode prints the bare value (for scripts)');
  const ge = await cfg(home, ['config', 'get', 'registry'], { PILOT_REGISTRY: '10.9.9.9:9000' });
  assert.deepEqual([ge.doc.data.value, ge.doc.data.source, ge.doc.data.env], ['10.9.9.9:9000', 'env', 'PILOT_REGISTRY']);
  const gd = await cfg(home, ['config', 'get', 'beacon']);
  assert.deepEqual([gd.doc.data.value, gd.doc.data.source], ['127.0.0.1:9001', 'default']);
  assert.equal((await cfg(home, ['config', 'get', 'hostname'])).doc.data.value, null);

  const over = await cfg(home, ['config', 'set', 'registry', '192.168.1.11:9000'], { PILOT_REGISTRY: '10.9.9.9:9000' });
  assert.equal(over.doc.data.overridden_by, 'PILOT_REGISTRY');
  assert.equal(over.doc.data.previous, '192.168.1.10:9000');

  const show = await cfg(home, ['config', 'show']);
  assert.equal(show.code, 0);
  assert.equal(show.doc.data.config_path, join(home, 'config.json'));
  for (const k of CONFIG_KEYS) assert.ok(k.key in show.doc.data.effective, k.key);
  assert.deepEqual(show.doc.data.effective.public, { value: true, source: 'file' });
  const showText = await pilotctl(['--home', home, 'config', 'show']);
  assert.match(showText.stdout, /registry\s+192\.168\.1\.11:9000\s+file/);
  assert.match(showText.stdout, /beacon\s+127\.0\.0\.1:9001\s+default/);

  const u = await cfg(home, ['config', 'unset', 'log-level']);
  assert.deepEqual([u.doc.data.key, u.doc.data.previous], ['log_level', 'debug']);
  assert.equal((await cfg(home, ['config', 'get', 'log_level'])).doc.data.source, 'default');

  // What config set writes, pilot-daemon reads back.
  const d = parseDaemonArgs(['--home', home], {});
  assert.ok(d.ok, !d.ok ? d.error.message : '');
  assert.equal(d.value.registry, '192.168.1.11:9000');
  assert.equal(d.value.public, true);
  assert.equal(d.value.keepaliveMs, 30_000);
  assert.equal(d.value.quotas.inboxMessages, 500);
});

test('invalid values and unknown keys: invalid_argument naming the key and the fix, exit 2, nothing written', async () => {
  const home = freshHome();
  const cases: Array<[string[], RegExp, RegExp]> = [
    [['registry', 'not-a-hostport'], /invalid value for registry/, /HOST:PORT.*config set registry 10\.0\.0\.5:9000/],
    [['beacon', '1.2.3.4:70000'], /invalid value for beacon/, /HOST:PORT/],
    [['public', 'maybe'], /invalid value for public/, /true or false/],
    [['keepalive', 'soon'], /invalid value for keepalive/, /duration/],
    [['inbox-max-bytes', 'lots'], /invalid value for inbox_max_bytes/, /size/],
    [['inbox-max-messages', '-3'], /invalid value for inbox_max_messages/, /whole number/],
    [['log_level', 'loud'], /invalid value for log_level/, /debug/],
    [['hostname', 'Not_A_Host'], /invalid value for hostname/, /./],
    [['regsitry', '1.2.3.4:9000'], /unknown config key 'regsitry'/, /did you mean registry/],
  ];
  for (const [args, msg, hint] of cases) {
    const r = await cfg(home, ['config', 'set', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.doc.code, 'invalid_argument');
    assert.match(r.doc.message!, msg, args.join(' '));
    assert.match(r.doc.hint!, hint, `${args.join(' ')}: ${r.doc.hint}`);
  }
  const legacy = await cfg(home, ['config', '--set', 'registry=bogus']);
  assert.equal(legacy.code, 2);
  assert.match(legacy.doc.message!, /invalid value for registry/);
  assert.deepEqual(readdirSync(home), [], 'nothing was written');
  assert.equal((await cfg(home, ['config', 'get', 'nosuchkey'])).doc.code, 'invalid_argument');
  // Every default is a value the key accepts.
  for (const k of CONFIG_KEYS) {
    const d = typeof k.dflt === 'function' ? k.dflt(home) : k.dflt;
    if (d === null) continue;
    assert.ok(parseConfigValue(k, String(d)).ok, `${k.key} default ${String(d)}`);
  }
  assert.equal(configKey('--idle-timeout')?.key, 'idle_timeout');
});

test('a config.json with a syntax error: file, line and column; get/show/set refuse, the file is untouched', async () => {
  const home = freshHome();
  const path = join(home, 'config.json');
  const broken = '{\n  "registry": "10.0.0.5:9000",\n  "public": tru\n}\n';
  writeFileSync(path, broken, { mode: 0o600 });
  for (const args of [['config'], ['config', 'show'], ['config', 'get', 'registry'], ['config', 'set', 'beacon', '10.0.0.5:9001'], ['config', '--set', 'public=true'], ['config', 'unset', 'public']]) {
    const r = await cfg(home, args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.doc.code, 'invalid_argument');
    assert.equal(r.doc.message, `${path}:3:13: unexpected 't': expected a value (a "string", number, true, false, null, {…} or […])`, args.join(' '));
    assert.match(r.doc.hint!, /fix line 3 of .*config\.json/);
    assert.deepEqual(r.doc.detail, { path, line: 3, column: 13, line_text: '  "public": tru' });
  }
  assert.equal(readFileSync(path, 'utf8'), broken, 'never overwritten');
  const t = await pilotctl(['--home', home, 'config', 'get', 'registry']);
  assert.match(t.stderr, /^error: .*config\.json:3:13: /);
  writeFileSync(path, '["registry"]\n');
  assert.match((await cfg(home, ['config', 'show'])).doc.message!, /is not a JSON object/);
});

test('the old forms keep working: config, config --set key=value', async () => {
  const home = freshHome();
  const set = await cfg(home, ['config', '--set', 'registry=10.0.0.1:9000']);
  assert.deepEqual(set.doc.data, { key: 'registry', value: '10.0.0.1:9000' });
  await cfg(home, ['config', '--set', 'public=true']);
  const show = await cfg(home, ['config']);
  assert.equal(show.doc.data.registry, '10.0.0.1:9000');
  assert.equal(show.doc.data.public, true);
  assert.equal(show.doc.data.config_path, join(home, 'config.json'));
  assert.equal((await cfg(home, ['config', '--set', 'novalue'])).code, 2);
});

test('config with an unknown subcommand is a usage error listing them; context lists the config keys', async () => {
  const r = await cfg(freshHome(), ['config', 'bogus']);
  assert.equal(r.code, 2);
  assert.equal(r.doc.message, 'unknown config subcommand: bogus');
  assert.match(r.doc.hint!, /config get \| config set \| config unset \| config show/);
  const c = await pilotctl(['context', '--json']);
  const keys = (c.json as { data: { config_keys: Record<string, string> } }).data.config_keys;
  assert.deepEqual(Object.keys(keys), CONFIG_KEYS.map((k) => k.key));
});

test('config show masks a proxy password; config get prints it as stored', async () => {
  const home = freshHome();
  assert.equal((await cfg(home, ['config', 'set', 'proxy', 'http://user:s3cret@proxy.example:3128'])).code, 0);
  const show = await cfg(home, ['config', 'show']);
  assert.equal(show.doc.data.effective.proxy.value, 'http://user:***@proxy.example:3128');
  assert.doesNotMatch(show.stdout, /s3cret/);
  assert.doesNotMatch((await pilotctl(['--home', home, 'config', 'show'])).stdout, /s3cret/);
  assert.equal((await cfg(home, ['config', 'get', 'proxy'])).doc.data.value, 'http://user:s3cret@proxy.example:3128');
});
