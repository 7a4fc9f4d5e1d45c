// daemon start/stop/status against a real child process (test/unit/cli/fake-daemon.ts via PILOT_DAEMON_BIN),
// and the real pilotctl bin as a child process.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binCommand } from '../../helpers/bins.js';
import { FAKE_DAEMON_SCRIPT as FAKE_DAEMON, pilotctl } from './helpers.js';

let dir: string;
let home: string;
const env = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, PILOT_DAEMON_BIN: FAKE_DAEMON });

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pilot-dmn-'));
  home = join(dir, 'h');
});

after(async () => {
  await pilotctl(['daemon', 'stop', '--home', home], { env: env() });
  rmSync(dir, { recursive: true, force: true });
});

function bin(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const [exe, ...pre] = binCommand('pilotctl');
    const child = spawn(exe!, [...pre, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: env() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

test('daemon start → status → start again → stop → status', async () => {
  const s = await pilotctl(['daemon', 'start', '--home', home, '--hostname', 'agent-x', '--registry', '127.0.0.1:1', '--json'], { env: env() });
  assert.equal(s.code, 0, s.stderr);
  const d = (s.json as { data: Record<string, unknown> }).data;
  assert.equal(d.node_id, 5);
  assert.equal(d.hostname, 'agent-x'); // forwarded flag reached the daemon
  assert.equal(d.socket, join(home, 'pilot.sock'));
  assert.equal(d.log_file, join(home, 'daemon.log'));
  assert.equal(Number(readFileSync(join(home, 'daemon.pid'), 'utf8')), d.pid);
  assert.match(readFileSync(join(home, 'daemon.log'), 'utf8'), /fake daemon listening/);

  const st = await pilotctl(['daemon', 'status', '--home', home, '--json'], { env: env() });
  const sd = (st.json as { data: Record<string, unknown> }).data;
  assert.deepEqual([sd.running, sd.responsive, sd.pid, sd.node_id, sd.uptime_secs], [true, true, d.pid, 5, 3725]);
  assert.match((await pilotctl(['daemon', 'status', '--home', home], { env: env() })).stdout, /Daemon: running \(pid \d+\)/);
  const check = await pilotctl(['daemon', 'status', '--check', '--home', home], { env: env() });
  assert.deepEqual([check.code, check.stdout, check.stderr], [0, '', '']);

  const again = await pilotctl(['daemon', 'start', '--home', home, '--json'], { env: env() });
  assert.equal(again.code, 1);
  assert.equal(JSON.parse(again.stderr).code, 'already_exists');

  const stop = await pilotctl(['daemon', 'stop', '--home', home, '--json'], { env: env() });
  assert.equal(stop.code, 0, stop.stderr);
  assert.deepEqual((stop.json as { data: unknown }).data, { pid: d.pid, forced: false });
  assert.equal(existsSync(join(home, 'daemon.pid')), false);

  const check2 = await pilotctl(['daemon', 'status', '--check', '--home', home], { env: env() });
  assert.equal(check2.code, 1);
  const st2 = await pilotctl(['daemon', 'status', '--home', home, '--json'], { env: env() });
  assert.equal(st2.code, 0);
  assert.equal((st2.json as { data: { responsive: boolean } }).data.responsive, false);
  const stop2 = await pilotctl(['daemon', 'stop', '--home', home, '--json'], { env: env() });
  assert.equal(stop2.code, 1);
  assert.equal(JSON.parse(stop2.stderr).code, 'not_running');
});

test('daemon start reports a daemon that dies during startup, with the log tail', async () => {
  const h = join(dir, 'failing');
  const r = await pilotctl(['daemon', 'start', '--home', h, '--json'], { env: { ...env(), FAKE_DAEMON_FAIL: '1' } });
  assert.equal(r.code, 1);
  const e = JSON.parse(r.stderr) as { code: string; message: string; detail: { log_tail: string } };
  assert.equal(e.code, 'internal');
  assert.match(e.message, /exited with code 3/);
  assert.match(e.detail.log_tail, /refusing to start/);
  assert.equal(existsSync(join(h, 'daemon.pid')), false);
});

test('daemon start validates forwarded flags before spawning', async () => {
  const r = await pilotctl(['daemon', 'start', '--home', join(dir, 'v'), '--hostname', 'NOPE', '--json'], { env: env() });
  assert.equal(r.code, 2);
  const r2 = await pilotctl(['daemon', 'start', '--home', join(dir, 'v'), '--registry', 'nowhere', '--json'], { env: env() });
  assert.equal(r2.code, 2);
  const r3 = await pilotctl(['daemon', 'start', '--home', join(dir, 'v'), '--no-such-flag', '--json'], { env: env() });
  assert.equal(r3.code, 2);
});

test('the pilotctl bin: envelope, exit codes, pipe mode', async () => {
  const h = join(dir, 'bin');
  const s = await pilotctl(['daemon', 'start', '--home', h], { env: env() });
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /Daemon running \(pid \d+\)\n {2}Node ID: +5\n {2}Address: +0:0000\.0000\.0005/);
  try {
    const [info, usage, piped] = await Promise.all([
      bin(['--json', 'info', '--home', h]),
      bin(['frobnicate', '--json']),
      bin(['connect', 'agent-alpha', '1000', '--home', h], '{"action":"status"}\n'),
    ]);
    assert.equal(info.code, 0, info.stderr);
    assert.equal(JSON.parse(info.stdout).status, 'ok');
    assert.equal(usage.code, 2);
    assert.equal(JSON.parse(usage.stderr).code, 'invalid_argument');
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stdout, 'reply:{"action":"status"}\n');
  } finally {
    await pilotctl(['daemon', 'stop', '--home', h], { env: env() });
  }
  const down = await bin(['info', '--home', h]);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /^error: daemon is not running.*\nhint: {2}start the daemon with: pilotctl daemon start\n$/);
});
