// The first five minutes (issue 17), with real processes: `pilotctl rendezvous start` in the background, two
// daemons that find it through `pilotctl config set registry/beacon` (no flags), a message between them, then
// status/stop; already_exists, a port in use, a pid file naming someone else's process (left alone), and
// `daemon start` with a config.json that does not parse. Cleanup kills exactly the pids this file started.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { explain, isAlive, runJson, runPilotctl, sleep, waitFor, type JsonRun } from './harness.js';

const root = mkdtempSync(join(tmpdir(), 'pi-first5-'));
const started = new Set<number>();

function home(name: string): string {
  const h = join(root, name);
  mkdirSync(h, { recursive: true, mode: 0o700 });
  return h;
}

function ok(r: JsonRun): any {
  assert.equal(r.code, 0, explain(r));
  assert.ok(r.data, explain(r));
  return r.data;
}

function fails(r: JsonRun, code: string, exit = 1): NonNullable<JsonRun['error']> {
  assert.equal(r.code, exit, explain(r));
  assert.equal(r.stdout.trim(), '', explain(r));
  assert.ok(r.error, explain(r));
  assert.equal(r.error.code, code, explain(r));
  assert.equal(typeof r.error.hint, 'string', explain(r));
  return r.error;
}

after(async () => {
  for (const h of ['rdv', 'alpha', 'beta']) {
    const p = join(root, h);
    if (!existsSync(p)) continue;
    await runJson(['--home', p, 'daemon', 'stop', '--timeout', '3s'], { killAfterMs: 15_000 });
    await runJson(['--home', p, 'rendezvous', 'stop', '--timeout', '3s'], { killAfterMs: 15_000 });
  }
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (!process.env.PILOT_KEEP_TEST_HOME) rmSync(root, { recursive: true, force: true });
});

test('rendezvous start → two daemons configured with config set → a message → status → stop', { timeout: 120_000 }, async () => {
  const rdv = home('rdv');
  const s = ok(await runJson(['--home', rdv, 'rendezvous', 'start', '--registry-addr', '127.0.0.1:0', '--beacon-addr', '127.0.0.1:0', '--compat-addr', '127.0.0.1:0']));
  started.add(s.pid);
  // Whatever else the ready line carries is passed through (the compat port and its certificate's fingerprint).
  assert.match(s.compat, /^127\.0\.0\.1:\d+$/);
  assert.match(s.fingerprint, /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/);
  assert.ok(existsSync(join(rdv, 'rendezvous', 'compat-tls.pem')), 'the self-signed certificate lives beside the store');
  assert.match(s.registry, /^127\.0\.0\.1:\d+$/);
  assert.match(s.beacon, /^127\.0\.0\.1:\d+$/);
  assert.equal(s.store, join(rdv, 'rendezvous', 'registry.db'));
  assert.equal(s.log_file, join(rdv, 'rendezvous', 'rendezvous.log'));
  assert.equal(s.pid_file, join(rdv, 'rendezvous', 'rendezvous.pid'));
  assert.equal(Number(readFileSync(s.pid_file, 'utf8')), s.pid);
  assert.equal(s.local_registry, s.registry);
  assert.ok(isAlive(s.pid));

  const [st, stt, chk] = await Promise.all([
    runJson(['--home', rdv, 'rendezvous', 'status']),
    runPilotctl(['--home', rdv, 'rendezvous', 'status']),
    runPilotctl(['--home', rdv, 'rendezvous', 'status', '--check']),
  ]);
  const sd = ok(st);
  assert.deepEqual([sd.running, sd.responsive, sd.pid, sd.registry, sd.beacon], [true, true, s.pid, s.registry, s.beacon]);
  assert.equal(typeof sd.uptime_secs, 'number');
  assert.match(stt.stdout, /Rendezvous: running \(pid \d+\)[\s\S]*Uptime:[\s\S]*pilotctl daemon start --registry 127\.0\.0\.1:\d+ --beacon 127\.0\.0\.1:\d+/);
  assert.equal(chk.code, 0);
  assert.equal(chk.stdout + chk.stderr, '');

  const again = fails(await runJson(['--home', rdv, 'rendezvous', 'start']), 'already_exists');
  assert.match(again.message, new RegExp(`pid ${s.pid}`));
  assert.match(again.hint!, /pilotctl rendezvous stop/);

  // Two agents set the registry once, in their config, and start with no address flags.
  const ids: number[] = [];
  for (const name of ['alpha', 'beta']) {
    const h = home(name);
    ok(await runJson(['--home', h, 'config', 'set', 'registry', s.registry]));
    ok(await runJson(['--home', h, 'config', 'set', 'beacon', s.beacon]));
    ok(await runJson(['--home', h, 'config', 'set', 'listen', '127.0.0.1:0']));
    ok(await runJson(['--home', h, 'config', 'set', 'trust_auto_approve', 'true']));
    const d = ok(await runJson(['--home', h, 'daemon', 'start', '--hostname', name]));
    started.add(d.pid);
    assert.ok(d.node_id > 0, `${name} registered: ${JSON.stringify(d)}`);
    ids.push(d.node_id);
  }
  const alpha = join(root, 'alpha');
  const beta = join(root, 'beta');
  ok(await runJson(['--home', alpha, 'handshake', 'beta', 'first five minutes']));
  await waitFor('mutual trust', async () => {
    const t = await runJson(['--home', alpha, 'trust']);
    return t.data?.trusted?.some((x: any) => x.node_id === ids[1] && x.mutual);
  }, 30_000, 200);
  ok(await runJson(['--home', alpha, 'send-message', 'beta', '--data', 'hello from alpha']));
  const inbox = await waitFor('the message in beta\'s inbox', async () => {
    const r = await runJson(['--home', beta, 'inbox']);
    return r.data?.messages?.length ? r.data.messages : null;
  }, 20_000, 200);
  assert.equal(inbox[0].from_hostname ?? 'alpha', 'alpha');
  assert.match(JSON.stringify(inbox[0].data), /hello from alpha/);

  const stop = ok(await runJson(['--home', rdv, 'rendezvous', 'stop']));
  assert.deepEqual(stop, { pid: s.pid, forced: false });
  await waitFor('the rendezvous process to exit', () => !isAlive(s.pid), 5000);
  started.delete(s.pid);
  assert.equal(existsSync(s.pid_file), false, 'pid file removed');
  assert.equal(ok(await runJson(['--home', rdv, 'rendezvous', 'status'])).running, false);
  assert.equal((await runPilotctl(['--home', rdv, 'rendezvous', 'status', '--check'])).code, 1);
  fails(await runJson(['--home', rdv, 'rendezvous', 'stop']), 'not_running');
  // The store survives: a restart on the same ports keeps the registrations.
  assert.ok(existsSync(join(rdv, 'rendezvous', 'registry.db')) || existsSync(join(rdv, 'rendezvous', 'registry.db.wal')));
});

test('a port in use: the rendezvous\'s own message and a hint naming the port; nothing left running', { timeout: 60_000 }, async () => {
  const a = home('port-a');
  const b = home('port-b');
  const s = ok(await runJson(['--home', a, 'rendezvous', 'start', '--registry-addr', '127.0.0.1:0', '--beacon-addr', '127.0.0.1:0', '--compat-addr', 'off']));
  started.add(s.pid);
  try {
    const port = s.registry.split(':')[1];
    const e = fails(await runJson(['--home', b, 'rendezvous', 'start', '--registry-addr', s.registry, '--beacon-addr', '127.0.0.1:0', '--compat-addr', 'off']), 'connection_failed');
    assert.match(e.message, /EADDRINUSE|address already in use/);
    assert.match(e.hint!, new RegExp(`port ${port}`));
    assert.match(e.hint!, /--registry-addr/);
    assert.equal(existsSync(join(b, 'rendezvous', 'rendezvous.pid')), false, 'no pid file for a rendezvous that never ran');
    const t = await runPilotctl(['--home', b, 'rendezvous', 'start', '--registry-addr', '127.0.0.1:0', '--beacon-addr', s.beacon, '--compat-addr', 'off']);
    assert.equal(t.code, 1);
    assert.match(t.stderr, /error: rendezvous did not start: .*EADDRINUSE/);
    assert.match(t.stderr, /hint: {2}port \d+/);
  } finally {
    ok(await runJson(['--home', a, 'rendezvous', 'stop']));
    started.delete(s.pid);
  }
});

test('a pid file naming another process: stop and status leave it alone', { timeout: 30_000 }, async () => {
  const h = home('foreign');
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  started.add(sleeper.pid!);
  try {
    mkdirSync(join(h, 'rendezvous'), { mode: 0o700 });
    writeFileSync(join(h, 'rendezvous', 'rendezvous.pid'), String(sleeper.pid));
    const st = ok(await runJson(['--home', h, 'rendezvous', 'status']));
    assert.equal(st.running, false);
    const e = fails(await runJson(['--home', h, 'rendezvous', 'stop']), 'not_running');
    assert.match(e.message, /left alone/);
    await sleep(200);
    assert.ok(isAlive(sleeper.pid!), 'the foreign process was not signalled');
    assert.equal(existsSync(join(h, 'rendezvous', 'rendezvous.pid')), false, 'the stale pid file was removed');
  } finally {
    sleeper.kill('SIGKILL');
    started.delete(sleeper.pid!);
  }
});

test('daemon start with a config.json that does not parse fails at once with file:line:column; nothing keeps running', { timeout: 30_000 }, async () => {
  const h = home('badcfg');
  const cfg = join(h, 'config.json');
  writeFileSync(cfg, '{\n  "registry": "127.0.0.1:9"\n  "hostname": "x"\n}\n', { mode: 0o600 });
  const r = await runJson(['--home', h, 'daemon', 'start']);
  assert.equal(r.code, 1, explain(r));
  assert.ok(r.error, explain(r));
  assert.ok(r.error.message.startsWith(`${cfg}:3:3: `), r.error.message);
  assert.equal(existsSync(join(h, 'daemon.pid')), false);
  const g = await runJson(['--home', h, 'config', 'get', 'registry']);
  fails(g, 'invalid_argument');
  assert.ok(g.error!.message.startsWith(`${cfg}:3:3: `), g.error!.message);
});

test('daemon start with no rendezvous: says at once it is not registered (two ways out), keeps retrying, registers when one appears', { timeout: 60_000 }, async () => {
  const { createServer } = await import('node:net');
  const freePort = (): Promise<number> =>
    new Promise((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
  const [rp, bp] = [await freePort(), await freePort()];
  const h = home('lonely');
  const r = await runJson(['--home', h, 'daemon', 'start', '--registry', `127.0.0.1:${rp}`, '--beacon', `127.0.0.1:${bp}`, '--listen', '127.0.0.1:0']);
  const e = fails(r, 'connection_failed');
  assert.ok(e.message.startsWith(`not registered: no rendezvous at 127.0.0.1:${rp} `), e.message);
  assert.match(e.hint!, /pilotctl rendezvous start/);
  assert.match(e.hint!, /--registry HOST:PORT/);
  const pid = (e as { detail?: { pid: number } }).detail!.pid;
  started.add(pid);
  assert.ok(isAlive(pid), 'the daemon keeps running');
  // No fake address while unregistered, and info says why.
  const i = ok(await runJson(['--home', h, 'info']));
  assert.equal(i.registered, false);
  assert.equal(i.address, null);
  assert.equal(i.registry_state, 'connecting');
  assert.match(i.registry_reason, /^not registered: no rendezvous at /);
  assert.equal(i.registry_error.code, 'connection_failed');
  assert.equal(typeof i.nat_reason, 'string');
  assert.equal(typeof i.datapath_reason, 'string');
  const text = await runPilotctl(['--home', h, 'info']);
  assert.match(text.stdout, /Node ID:\s+not registered/);
  assert.doesNotMatch(text.stdout, /0:0000\.0000\.0000/);
  const st = ok(await runJson(['--home', h, 'daemon', 'status']));
  assert.equal(st.registered, false);
  assert.match(st.registry_reason, /not registered/);
  const sick = await runJson(['--home', h, 'health']);
  const se = fails(sick, 'connection_failed');
  assert.match(se.message, /^unhealthy: registry: not registered/);
  assert.equal((se as { detail?: { healthy: boolean } }).detail!.healthy, false);
  // A rendezvous appears on that address: the daemon registers on its own (backoff ≤ 10 s).
  const rdvHome = home('lonely-rdv');
  const rs = ok(await runJson(['--home', rdvHome, 'rendezvous', 'start', '--registry-addr', `127.0.0.1:${rp}`, '--beacon-addr', `127.0.0.1:${bp}`, '--compat-addr', 'off']));
  started.add(rs.pid);
  const reg = await waitFor('registration', async () => {
    const x = await runJson(['--home', h, 'info']);
    return x.data?.registered ? x.data : null;
  }, 20_000, 250);
  assert.ok(reg.node_id > 0);
  assert.match(reg.address, /^0:0000\.0000\./);
  assert.equal(reg.registry_state, 'registered');
  assert.equal(reg.registry_error, null);
  const well = ok(await runJson(['--home', h, 'health']));
  assert.equal(well.healthy, true);
  assert.deepEqual(well.checks.map((k: { name: string }) => k.name), ['daemon', 'registry', 'nat', 'transport', 'datapath', 'paths']);
  ok(await runJson(['--home', h, 'daemon', 'stop']));
  fails(await runJson(['--home', h, 'health']), 'not_running');
  ok(await runJson(['--home', rdvHome, 'rendezvous', 'stop']));
});

test('daemon start on a UDP port in use: the daemon\'s own error and fix, not a log dump', { timeout: 30_000 }, async () => {
  const { createSocket } = await import('node:dgram');
  const holder = createSocket('udp4');
  await new Promise<void>((r) => holder.bind(0, '127.0.0.1', () => r()));
  try {
    const port = holder.address().port;
    const h = home('busy-port');
    const r = await runJson(['--home', h, 'daemon', 'start', '--registry', '127.0.0.1:1', '--listen', `127.0.0.1:${port}`]);
    const e = fails(r, 'invalid_argument');
    assert.match(e.message, new RegExp(`^daemon did not start: UDP 127\\.0\\.0\\.1:${port} is already in use`));
    assert.match(e.hint!, /pick another port/);
    assert.equal(existsSync(join(h, 'daemon.pid')), false, 'nothing half-started');
  } finally {
    holder.close();
  }
});
