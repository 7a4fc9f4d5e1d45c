// Issue 10, "the home is ours": a home another user owns or may write is refused with `unsafe_home`; a new
// home is 0700; a merely readable one is narrowed to 0700. The attacks are tested where they are enforced:
// prepareHome (daemon start, pilot-daemon), and through pilotctl, which used to use such a home without a word.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkHome, prepareHome } from '../../../src/node/home.js';
import { createNode } from '../../../src/sdk/local-node.js';
import { FAKE_DAEMON_SCRIPT, pilotctl } from '../cli/helpers.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pilot-home-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('a new home is created 0700', () => {
  const h = join(dir, 'new', 'home');
  assert.ok(prepareHome(h).ok);
  assert.equal(statSync(h).mode & 0o777, 0o700);
});

test('a home readable by others (0755) is forced to 0700', () => {
  const h = join(dir, 'readable');
  mkdirSync(h, { mode: 0o755 });
  chmodSync(h, 0o755);
  assert.ok(prepareHome(h).ok);
  assert.equal(statSync(h).mode & 0o777, 0o700);
});

test('attack: a world-writable home is refused (unsafe_home), by prepareHome and by pilotctl daemon start', async () => {
  const h = join(dir, 'world-writable');
  mkdirSync(h);
  chmodSync(h, 0o777);
  const r = prepareHome(h);
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'unsafe_home');
  assert.match(r.error.message, /writable by group or others \(mode 777\)/);
  assert.match(r.error.hint ?? '', /chmod 700/);
  assert.equal(statSync(h).mode & 0o777, 0o777, 'an unsafe home is reported, not silently "fixed"');

  const s = await pilotctl(['daemon', 'start', '--home', h, '--json'], { env: { PATH: process.env.PATH, PILOT_DAEMON_BIN: FAKE_DAEMON_SCRIPT } });
  assert.equal(s.code, 1, s.stdout);
  assert.equal(JSON.parse(s.stderr).code, 'unsafe_home');
  assert.equal(existsSync(join(h, 'daemon.pid')), false, 'no daemon was started in it');
  assert.equal(existsSync(join(h, 'pilot.sock')), false);

  const c = await pilotctl(['config', '--set', 'registry=10.0.0.1:9000', '--home', h, '--json'], { env: {} });
  assert.equal(c.code, 1);
  assert.equal(JSON.parse(c.stderr).code, 'unsafe_home');
  assert.equal(existsSync(join(h, 'config.json')), false);

  chmodSync(h, 0o770); // group-writable is refused as well
  assert.equal(checkHome(h).ok, false);
});

test('attack: a home owned by another user is refused (unsafe_home)', { skip: isRoot ? false : 'needs root to chown' }, async () => {
  const h = join(dir, 'foreign');
  mkdirSync(h, { mode: 0o700 });
  chownSync(h, 65534, 65534);
  const r = prepareHome(h);
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'unsafe_home');
  assert.match(r.error.message, /owned by uid 65534/);
  assert.deepEqual(r.error.detail?.owner_uid, 65534);
  const s = await pilotctl(['daemon', 'start', '--home', h, '--json'], { env: { PATH: process.env.PATH, PILOT_DAEMON_BIN: FAKE_DAEMON_SCRIPT } });
  assert.equal(s.code, 1);
  assert.equal(JSON.parse(s.stderr).code, 'unsafe_home');
  assert.equal(existsSync(join(h, 'daemon.pid')), false);
});

test('a home that is a file is refused; a missing one is not_found for checkHome', () => {
  const f = join(dir, 'plain-file');
  writeFileSync(f, 'x');
  const r = checkHome(f);
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'unsafe_home');
  const m = checkHome(join(dir, 'missing'));
  assert.ok(!m.ok);
  assert.equal(m.error.code, 'not_found');
});

test('attack: the in-process node (pilot-daemon, createNode) refuses a world-writable home before touching it', async () => {
  const h = join(dir, 'ww-node');
  mkdirSync(h);
  chmodSync(h, 0o777);
  const n = await createNode({ home: h, registry: '127.0.0.1:1', listen: '127.0.0.1:0' });
  assert.ok(!n.ok);
  assert.equal(n.error.code, 'unsafe_home');
  assert.equal(existsSync(join(h, 'identity.json')), false, 'no key was written into it');
});
