// Bad input and faults against real processes: usage errors, unknown names, no daemon, untrusted peers,
// hostile control-socket clients, corrupt state files, and a peer that vanishes mid-transfer (daemons run with
// --idle-timeout 5s, so the sender must fail within that, not hang).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { Cluster, explain, isAlive, runJson, runPilotctl, sleep, waitFor, type JsonRun } from './harness.js';

const IDLE_TIMEOUT_S = 5;
let c: Cluster;
const id = (n: string): number => c.node(n).nodeId;

before(async () => {
  c = await Cluster.start('flt', ['fa', 'fb', 'fc', 'fs'], { daemonFlags: ['--idle-timeout', `${IDLE_TIMEOUT_S}s`] });
  await c.trust('fa', 'fb');
  await c.trust('fa', 'fc');
});

after(async () => {
  await c?.close();
});

function expectError(r: JsonRun, code: string, exit = 1): NonNullable<JsonRun['error']> {
  assert.equal(r.code, exit, explain(r));
  assert.equal(r.stdout.trim(), '', explain(r));
  assert.ok(r.error, explain(r));
  assert.equal(r.error.code, code, explain(r));
  assert.ok(r.error.hint && r.error.hint.length > 0, `no hint: ${explain(r)}`);
  return r.error;
}

test('invalid addresses, hostnames, ports, sizes and flags → invalid_argument with a hint, exit 2, before any daemon is asked', async () => {
  const nowhere = join(c.root, 'no-daemon-here');
  const cases = [
    ['ping', '1:xyz'],
    ['ping', '0:0000.0000'],
    ['connect', 'Bad_Name', '7', '--message', 'x'],
    ['connect', 'fa', '65536', '--message', 'x'],
    ['send', 'fa', 'seven', '--data', 'x'],
    ['bench', 'fa', '-3'],
    ['bench', 'fa', '200000'],
    ['ping', 'fa', '--count', 'many'],
    ['ping', 'fa', '--interval', 'often'],
    ['send-message', 'fa', '--data', 'x', '--type', 'xml'],
    ['handshake'],
    ['listen', '0'],
    ['recv', '70000'],
    ['set-hostname', '-leading-hyphen'],
    ['info', '--no-such-flag'],
    ['daemon', 'start', '--hostname', 'UPPER'],
    ['daemon', 'start', '--listen', 'no-port'],
  ];
  const rs = await Promise.all(cases.map((a) => runJson(['--home', nowhere, ...a])));
  rs.forEach((r) => expectError(r, 'invalid_argument', 2));
  assert.equal(existsSync(join(nowhere, 'daemon.pid')), false, 'usage errors start nothing');
});

test('unknown hostname → not_found; daemon absent → not_running (exit 1, hint to start it)', async () => {
  for (const args of [['find', 'nobody-here'], ['ping', 'nobody-here', '--count', '1'], ['send-message', 'nobody-here', '--data', 'x'], ['connect', 'nobody-here', '7', '--message', 'x'], ['handshake', 'nobody-here']]) {
    const r = await c.json('fa', args);
    const e = expectError(r, 'not_found');
    assert.match(e.message, /nobody-here/);
  }
  const nowhere = join(c.root, 'no-daemon-here');
  mkdirSync(nowhere, { recursive: true });
  const rs = await Promise.all([['info'], ['trust'], ['ping', 'fa'], ['send-message', 'fa', '--data', 'x'], ['inbox']].map((a) => runJson(['--home', nowhere, ...a])));
  for (const r of rs) {
    const e = expectError(r, 'not_running');
    assert.match(e.hint!, /pilotctl daemon start/);
  }
  const t = await runPilotctl(['--home', nowhere, 'info']);
  assert.equal(t.code, 1);
  assert.match(t.stderr, /not running/);
  assert.equal(t.stdout, '');
});

test('untrusted peer → an error that says to handshake (and the stranger daemon survives it)', async () => {
  for (const args of [['send-message', 'fa', '--data', 'hi'], ['connect', 'fa', '7', '--message', 'hi'], ['send-file', 'fa', join(c.root, 'x.txt')], ['publish', 'fa', 't', '--data', 'x'], ['bench', 'fa', '1']]) {
    writeFileSync(join(c.root, 'x.txt'), 'x');
    const r = await c.json('fs', args);
    assert.equal(r.code, 1, explain(r));
    assert.equal(r.error?.code, 'connection_failed', explain(r));
    assert.match(`${r.error?.message} ${r.error?.hint}`, /handshake/i, explain(r));
  }
  const p = await c.json('fs', ['ping', 'fa', '--count', '1']);
  assert.match(p.data.results[0].error, /trust/);
  assert.ok(isAlive(c.node('fs').pid));
});

test('malformed control-socket lines get error answers and do not disturb other clients', async () => {
  const sock = join(c.homeOf('fa'), 'pilot.sock');
  const raw = createConnection(sock);
  let answers = '';
  raw.on('data', (b: Buffer) => (answers += b.toString()));
  raw.on('error', () => {});
  await new Promise<void>((r) => raw.once('connect', () => r()));
  // Garbage, half JSON, wrong types, unknown method, a valid request: one answer per line, ids kept.
  raw.write('this is not json\n');
  raw.write('{"id": 1, "method": \n');
  raw.write('[1,2,3]\n');
  raw.write('{"id": 2, "method": "no_such_method"}\n');
  raw.write('{"id": 3, "method": "ping", "params": {"peer": 12, "count": "x"}}\n');
  raw.write('{"id": 4, "method": "info"}\n');
  await waitFor('answers to all six lines', () => answers.split('\n').filter(Boolean).length >= 6, 5000);
  const lines = answers.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.equal(lines.filter((l) => l.ok === false).length, 5, answers);
  const info = lines.find((l) => l.id === 4);
  assert.equal(info.ok, true);
  assert.equal(info.result.node_id, id('fa'));
  for (const l of lines.filter((x) => x.ok === false)) assert.equal(typeof l.error.code, 'string');

  // Meanwhile and afterwards, pilotctl is served normally.
  // The client reads, as every real client does: it gets the answer, then the daemon's close. (A client that never
  // reads and has handed all its bytes to the kernel cannot notice a close until it reads or writes again.)
  const big = createConnection(sock);
  big.on('error', () => {});
  let bigAnswer = '';
  big.on('data', (b: Buffer) => (bigAnswer += b.toString()));
  await new Promise<void>((r) => big.once('connect', () => r()));
  const closed = new Promise<void>((r) => big.once('close', () => r()));
  big.write(Buffer.alloc(2 * 1024 * 1024, 0x61)); // a 2 MB line with no newline: over the limit, that client is dropped
  const [ok1] = await Promise.all([c.ok('fa', ['info']), Promise.race([closed, sleep(30_000)])]);
  assert.equal(ok1.node_id, id('fa'));
  assert.ok(big.destroyed || big.closed, 'the oversized client is dropped');
  const bigLines = bigAnswer.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.equal(bigLines.length, 1, bigAnswer);
  assert.equal(bigLines[0].ok, false);
  assert.equal(bigLines[0].error.code, 'invalid_argument');
  assert.match(bigLines[0].error.message, /exceeds 1048576 bytes/);
  raw.destroy();
  // A client that vanishes mid-call does not hurt the daemon either.
  const quitter = createConnection(sock);
  quitter.on('error', () => {});
  await new Promise<void>((r) => quitter.once('connect', () => r()));
  quitter.write('{"id": 1, "method": "ping", "params": {"peer": "fb", "count": 3, "interval_ms": 200}}\n');
  await sleep(50);
  quitter.destroy();
  await sleep(800);
  assert.equal((await c.ok('fa', ['info'])).node_id, id('fa'));
  assert.ok(isAlive(c.node('fa').pid));
});

test('corrupt trust.json / identity.json: daemon start fails with a clear error, the file is kept, never emptied', async () => {
  const home = c.homeOf('corrupt-trust');
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, 'trust.json'), '{"trusted": [ {"node_id": 7, "public_key"');
  const r = await c.json('corrupt-trust', ['daemon', 'start', '--registry', c.registry, '--beacon', c.beacon, '--listen', '127.0.0.1:0']);
  assert.equal(r.code, 1, explain(r));
  assert.match(r.error!.message, /trust\.json/);
  assert.match(r.error!.message, /corrupt/);
  const aside = readdirSync(home).filter((f) => f.startsWith('trust.json.corrupt-'));
  assert.equal(aside.length, 1, readdirSync(home).join(' '));
  assert.equal(readFileSync(join(home, aside[0]!), 'utf8'), '{"trusted": [ {"node_id": 7, "public_key"', 'the bad file is kept byte for byte');
  assert.equal(existsSync(join(home, 'daemon.pid')), false);

  const home2 = c.homeOf('corrupt-id');
  mkdirSync(home2, { recursive: true });
  writeFileSync(join(home2, 'identity.json'), 'not an identity', { mode: 0o600 });
  const r2 = await c.json('corrupt-id', ['daemon', 'start', '--registry', c.registry, '--beacon', c.beacon, '--listen', '127.0.0.1:0']);
  assert.equal(r2.code, 1, explain(r2));
  assert.match(r2.error!.message, /identity\.json/);
  assert.match(r2.error!.message, /corrupt/);
  const kept = readdirSync(home2).filter((f) => f.startsWith('identity.json')).map((f) => readFileSync(join(home2, f), 'utf8'));
  assert.ok(kept.includes('not an identity'), 'the identity file is neither replaced nor emptied');
  // Text mode says the same to a human.
  const t = await c.text('corrupt-id', ['daemon', 'start', '--registry', c.registry, '--beacon', c.beacon, '--listen', '127.0.0.1:0']);
  assert.equal(t.code, 1);
  assert.match(t.stderr, /identity\.json[\s\S]*corrupt|corrupt[\s\S]*identity\.json/);
});

/** SIGKILL `victim` once `fa`'s transfer is under way; the transfer must end in an error within the idle timeout. */
async function killMidTransfer(victim: string, args: string[], label: string): Promise<void> {
  const run = c.json('fa', args, { killAfterMs: 90_000 });
  // Let the transfer get going (the connection is established and data flows), then pull the plug.
  const sdk = await c.client('fa');
  await waitFor(`${label} under way`, async () => {
    const conns = await sdk.connections();
    return conns.ok && conns.value.connections.some((x) => x.peer_node_id === id(victim) && x.bytes_sent > 256 * 1024);
  }, 20_000, 5);
  const t0 = performance.now();
  await c.killDaemon(victim, 'SIGKILL');
  const r = await run;
  const ms = performance.now() - t0;
  console.log(`# ${label}: receiver SIGKILLed → sender error after ${Math.round(ms)} ms (idle timeout ${IDLE_TIMEOUT_S} s): ${r.error?.code} ${r.error?.message}`);
  assert.equal(r.code, 1, `the sender must fail, not succeed: ${explain(r)}`);
  assert.ok(['connection_failed', 'timeout'].includes(r.error!.code), explain(r));
  assert.ok(ms < (IDLE_TIMEOUT_S + 5) * 1000, `took ${ms} ms`);
  assert.ok(isAlive(c.node('fa').pid), 'the sender daemon survives');
  assert.equal((await c.ok('fa', ['info'])).node_id, id('fa'));
}

test('a receiver SIGKILLed during bench: the sender gets an error within the idle timeout', async () => {
  await killMidTransfer('fb', ['bench', 'fb', '500', '--timeout', '60s'], 'bench 500 MB');
});

test('a receiver SIGKILLed during send-file: the sender gets an error within the idle timeout', async () => {
  const file = join(c.root, 'big.bin');
  writeFileSync(file, randomBytes(16_000_000)); // the data exchange frame limit is 16 MiB
  // Capped at 4 MiB/s (≥ 3.8 s): uncapped, 16 MB through two local daemons takes ≈ 0.1 s, about as long as
  // noticing it is under way and killing the receiver, so the kill could come after the end.
  await killMidTransfer('fc', ['send-file', 'fc', file, '--timeout', '60s', '--limit-rate', '4M'], 'send-file 16 MB');
});

// Crashed the dialing daemon (an unlistened PilotDuplex error) until 58d624d.
test('a dial that is refused is an error for the caller, not a crash of the daemon', async () => {
  await c.trust('fs', 'fa');
  const refused = await c.json('fs', ['connect', 'fa', '4444', '--message', 'x', '--timeout', '5s']);
  assert.equal(refused.code, 1, explain(refused));
  assert.equal(refused.error?.code, 'connection_failed', explain(refused));
  await sleep(300);
  assert.ok(isAlive(c.node('fs').pid), 'fs survives a refused dial');
  assert.equal((await c.ok('fs', ['info'])).node_id, id('fs'));
});
