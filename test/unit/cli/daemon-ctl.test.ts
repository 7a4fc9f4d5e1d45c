// Issue 10: `daemon stop` signals only a process shown to be this home's daemon, and the pid file is written
// through core/safe-file. The old code SIGTERMed whatever pid daemon.pid held and followed a planted symlink.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isOurDaemonProcess } from '../../../src/cli/daemon-ctl.js';
import { generateIdentity } from '../../../src/crypto/identity.js';
import { publishDaemonKey } from '../../../src/node/daemon-proof.js';
import { prepareHome } from '../../../src/node/home.js';
import { FAKE_DAEMON_SCRIPT, pilotctl } from './helpers.js';

let dir: string;
const env = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, PILOT_DAEMON_BIN: FAKE_DAEMON_SCRIPT });
const started: ChildProcess[] = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pilot-dctl-'));
});
after(() => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A process that is not ours to stop: a `sleep` whose death we would notice. */
function foreignProcess(): { child: ChildProcess; signalled: () => NodeJS.Signals | null } {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  started.push(child);
  let sig: NodeJS.Signals | null = null;
  child.on('exit', (_c, s) => (sig = s));
  return { child, signalled: () => sig };
}

/** Gone or a zombie (exited, not reaped yet: the test process is its parent) within 2 s. */
async function isDeadSoon(pid: number): Promise<boolean> {
  for (let i = 0; i < 40; i++) {
    try {
      process.kill(pid, 0);
      if (/\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) return true;
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

const settle = (ms = 200): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('attack: daemon stop with a pid file naming a foreign process does not signal it', async () => {
  const h = join(dir, 'foreign-pid');
  assert.ok(prepareHome(h).ok);
  const victim = foreignProcess();
  writeFileSync(join(h, 'daemon.pid'), String(victim.child.pid));
  assert.equal(isOurDaemonProcess(victim.child.pid!, h, env()), false);
  const r = await pilotctl(['daemon', 'stop', '--home', h, '--json'], { env: env() });
  await settle();
  assert.equal(victim.signalled(), null, 'the foreign process was signalled');
  assert.equal(victim.child.exitCode, null);
  assert.equal(r.code, 1);
  const e = JSON.parse(r.stderr) as { code: string; message: string; detail: { foreign_pid: number } };
  assert.equal(e.code, 'not_running');
  assert.match(e.message, /not a pilot-daemon/);
  assert.equal(e.detail.foreign_pid, victim.child.pid);
  victim.child.kill('SIGKILL');
});

test('attack: a pid file swapped to a foreign pid while our daemon runs: the daemon stops, the foreign process lives', async () => {
  const h = join(dir, 'swapped');
  const s = await pilotctl(['daemon', 'start', '--home', h, '--registry', '127.0.0.1:1', '--json'], { env: env() });
  assert.equal(s.code, 0, s.stderr);
  const daemonPid = (s.json as { data: { pid: number } }).data.pid;
  assert.equal(isOurDaemonProcess(daemonPid, h, env()), true, '/proc recognises our daemon for this home');
  assert.equal(isOurDaemonProcess(daemonPid, join(dir, 'another-home'), env()), false, '…and not for another home');
  const victim = foreignProcess();
  writeFileSync(join(h, 'daemon.pid'), String(victim.child.pid));
  const r = await pilotctl(['daemon', 'stop', '--home', h, '--json'], { env: env() });
  assert.equal(r.code, 0, r.stderr);
  await settle();
  assert.equal(victim.signalled(), null);
  assert.ok(await isDeadSoon(daemonPid), 'our daemon is gone');
  victim.child.kill('SIGKILL');
});

test('attack: daemon stop against a squatted socket refuses (daemon_unverified) and signals nothing', async () => {
  const h = join(dir, 'squat-stop');
  assert.ok(prepareHome(h).ok);
  assert.ok(publishDaemonKey(h, generateIdentity().publicKey).ok);
  const victim = foreignProcess();
  writeFileSync(join(h, 'daemon.pid'), String(victim.child.pid));
  let bytes = '';
  const sq = createServer((c) => {
    c.on('data', (b: Buffer) => (bytes += b.toString()));
    c.on('error', () => {});
    c.end(); // closes at once: no proof
  });
  await new Promise<void>((r) => sq.listen(join(h, 'pilot.sock'), () => r()));
  try {
    const r = await pilotctl(['daemon', 'stop', '--home', h, '--json'], { env: env() });
    assert.equal(r.code, 1);
    assert.equal(JSON.parse(r.stderr).code, 'daemon_unverified');
    await settle();
    assert.equal(victim.signalled(), null);
    assert.equal(bytes.includes('shutdown'), false, 'the squatter was asked to shut down');
    const st = await pilotctl(['daemon', 'status', '--home', h, '--json'], { env: env() });
    assert.equal(JSON.parse(st.stderr).code, 'daemon_unverified');
  } finally {
    sq.close();
    victim.child.kill('SIGKILL');
  }
});

test('attack: a daemon.pid symlink planted in the home is replaced, its target untouched (pilotctl and pilot-daemon)', async () => {
  const h = join(dir, 'pid-symlink');
  assert.ok(prepareHome(h).ok);
  const target = join(dir, 'victim-file');
  writeFileSync(target, 'VICTIM\n');
  symlinkSync(target, join(h, 'daemon.pid'));
  const s = await pilotctl(['daemon', 'start', '--home', h, '--registry', '127.0.0.1:1', '--json'], { env: env() });
  assert.equal(s.code, 0, s.stderr);
  assert.equal(readFileSync(target, 'utf8'), 'VICTIM\n');
  assert.equal(lstatSync(join(h, 'daemon.pid')).isFile(), true);
  assert.equal(Number(readFileSync(join(h, 'daemon.pid'), 'utf8')), (s.json as { data: { pid: number } }).data.pid);
  const stop = await pilotctl(['daemon', 'stop', '--home', h, '--json'], { env: env() });
  assert.equal(stop.code, 0, stop.stderr);
});

test('attack: a daemon.log symlink planted in the home is refused, its target untouched', async () => {
  const h = join(dir, 'log-symlink');
  assert.ok(prepareHome(h).ok);
  const target = join(dir, 'victim-log');
  writeFileSync(target, 'VICTIM\n');
  symlinkSync(target, join(h, 'daemon.log'));
  const s = await pilotctl(['daemon', 'start', '--home', h, '--json'], { env: env() });
  assert.equal(s.code, 1);
  assert.match(JSON.parse(s.stderr).hint, /symlink/);
  assert.equal(readFileSync(target, 'utf8'), 'VICTIM\n');
});

test('daemon start is not blocked by a stale pid file naming a foreign process (pid reuse)', async () => {
  const h = join(dir, 'reused-pid');
  assert.ok(prepareHome(h).ok);
  const victim = foreignProcess();
  writeFileSync(join(h, 'daemon.pid'), String(victim.child.pid));
  const s = await pilotctl(['daemon', 'start', '--home', h, '--registry', '127.0.0.1:1', '--json'], { env: env() });
  assert.equal(s.code, 0, s.stderr);
  const stop = await pilotctl(['daemon', 'stop', '--home', h, '--json'], { env: env() });
  assert.equal(stop.code, 0, stop.stderr);
  assert.equal(victim.signalled(), null);
  victim.child.kill('SIGKILL');
});

test('a hung daemon (SIGSTOP: cannot answer auth) is still stopped: /proc shows it is ours', async () => {
  const h = join(dir, 'hung');
  const s = await pilotctl(['daemon', 'start', '--home', h, '--registry', '127.0.0.1:1', '--json'], { env: env() });
  assert.equal(s.code, 0, s.stderr);
  const pid = (s.json as { data: { pid: number } }).data.pid;
  process.kill(pid, 'SIGSTOP');
  try {
    const r = await pilotctl(['daemon', 'stop', '--home', h, '--json'], { env: env() });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((r.json as { data: unknown }).data, { pid, forced: true });
    assert.ok(await isDeadSoon(pid), 'the hung daemon is gone');
  } finally {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});
