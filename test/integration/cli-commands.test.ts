// Every pilotctl command against real daemons (one rendezvous, alpha + beta, and gamma for the daemon
// lifecycle and trust refusals), in text and --json form. The JSON contract: {"status":"ok","data":…} on stdout
// and exit 0; {"status":"error","code","message","hint"} on stderr and exit 1; usage errors exit 2.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binCommand } from '../helpers/bins.js';
import { Cluster, cleanEnv, explain, lastJson, readBytes, sleep, spawnPilotctl, waitFor, waitRecvReady, type CliRun, type JsonRun } from './harness.js';

let c: Cluster;
let alphaId = 0;
let betaId = 0;

/** Success envelope: exit 0, one JSON document on stdout, nothing JSON-ish on stderr. */
function assertOk(r: JsonRun): any {
  assert.equal(r.code, 0, explain(r));
  const doc = lastJson(r.stdout);
  assert.equal(doc?.status, 'ok', explain(r));
  assert.ok('data' in doc, explain(r));
  assert.equal(r.error, null, explain(r));
  return doc.data;
}

/** Error envelope on stderr, nothing on stdout, the given code and exit status. */
function assertErr(r: JsonRun, code: string, exit = 1): NonNullable<JsonRun['error']> {
  assert.equal(r.code, exit, explain(r));
  assert.equal(r.stdout.trim(), '', explain(r));
  assert.ok(r.error, explain(r));
  assert.equal(r.error.status, 'error');
  assert.equal(r.error.code, code, explain(r));
  assert.equal(typeof r.error.message, 'string');
  assert.ok(r.error.message.length > 0);
  assert.equal(typeof r.error.hint, 'string', `error without hint: ${explain(r)}`);
  return r.error;
}

function assertText(r: CliRun, re: RegExp): void {
  assert.equal(r.code, 0, explain(r));
  assert.doesNotMatch(r.stdout, /^\{"status"/, 'text mode printed JSON');
  assert.match(r.stdout, re, explain(r));
}

before(async () => {
  c = await Cluster.start('cli', ['alpha', 'beta']);
  alphaId = c.node('alpha').nodeId;
  betaId = c.node('beta').nodeId;
});

after(async () => {
  await c?.close();
});

test('daemon start|status|stop in text and --json, --check exit codes, already_exists, not_running', async () => {
  const home = c.homeOf('gamma');
  // Text start: human output on stdout, progress on stderr.
  const t = await c.text('gamma', ['daemon', 'start', '--registry', c.registry, '--beacon', c.beacon, '--hostname', 'gamma', '--listen', '127.0.0.1:0']);
  assertText(t, /Daemon running \(pid \d+\)[\s\S]*Node ID:\s+\d+[\s\S]*Address:\s+0:0000\.0000\.\d{4}/);
  const pid = Number(/pid (\d+)/.exec(t.stdout)![1]);
  c.nodes.push({ name: 'gamma', home, nodeId: Number(/Node ID:\s+(\d+)/.exec(t.stdout)![1]), address: '', pid, flags: [] });

  const [st, stj, chk] = await Promise.all([
    c.text('gamma', ['daemon', 'status']),
    c.json('gamma', ['daemon', 'status']),
    c.text('gamma', ['daemon', 'status', '--check']),
  ]);
  assertText(st, /Daemon: running/);
  const s = assertOk(stj);
  assert.equal(s.running, true);
  assert.equal(s.responsive, true);
  assert.equal(s.pid, pid);
  assert.equal(s.hostname, 'gamma');
  assert.equal(typeof s.uptime_secs, 'number');
  assert.equal(chk.code, 0);
  assert.equal(chk.stdout + chk.stderr, '', '--check is silent');

  const again = await c.json('gamma', ['daemon', 'start', '--registry', c.registry, '--beacon', c.beacon]);
  assertErr(again, 'already_exists');

  // JSON stop, then everything reports "not running".
  const stop = assertOk(await c.json('gamma', ['daemon', 'stop']));
  assert.equal(stop.pid, pid);
  assert.equal(stop.forced, false);
  const [chk2, stj2, stop2, stop2t, info] = await Promise.all([
    c.text('gamma', ['daemon', 'status', '--check']),
    c.json('gamma', ['daemon', 'status']),
    c.json('gamma', ['daemon', 'stop']),
    c.text('gamma', ['daemon', 'stop']),
    c.json('gamma', ['info']),
  ]);
  assert.equal(chk2.code, 1);
  assert.equal(chk2.stdout + chk2.stderr, '');
  assert.equal(assertOk(stj2).running, false);
  assertErr(stop2, 'not_running');
  assert.equal(stop2t.code, 1);
  assert.match(stop2t.stderr, /not running/i);
  const e = assertErr(info, 'not_running');
  assert.match(e.hint!, /pilotctl daemon start/);

  // JSON start again, text stop.
  const g = await c.startDaemon('gamma');
  assert.ok(g.nodeId > 0);
  const ts = await c.text('gamma', ['daemon', 'stop']);
  assertText(ts, /daemon stopped/);
  assert.equal(existsSync(join(home, 'daemon.pid')), false, 'pid file removed');
});

test('info, set-hostname, clear-hostname, find, set-public, set-private, set-tags', async () => {
  const [it, ij] = await Promise.all([c.text('alpha', ['info']), c.json('alpha', ['info'])]);
  assertText(it, /Node ID:\s+1\b[\s\S]*Hostname:\s+alpha/);
  const i = assertOk(ij);
  assert.equal(i.node_id, alphaId);
  assert.match(i.address, /^0:0000\.0000\.0001$/);
  assert.equal(i.hostname, 'alpha');
  assert.equal(Buffer.from(i.public_key, 'base64').length, 32);
  assert.equal(i.registry, c.registry);
  assert.equal(i.registry_connected, true);
  assert.equal(typeof i.uptime_secs, 'number');

  const sh = assertOk(await c.json('alpha', ['set-hostname', 'alpha-two']));
  assert.deepEqual(sh, { hostname: 'alpha-two', node_id: alphaId });
  assert.equal(assertOk(await c.json('beta', ['find', 'alpha-two'])).node_id, alphaId);
  assertErr(await c.json('alpha', ['set-hostname', 'beta']), 'already_exists');
  assertText(await c.text('alpha', ['set-hostname', 'alpha']), /hostname set: alpha/);
  // (beta's cache of 'alpha-two': the last test in this file.)

  const ch = assertOk(await c.json('beta', ['clear-hostname']));
  assert.deepEqual(ch, { hostname: '', node_id: betaId });
  assertErr(await c.json('alpha', ['find', 'beta']), 'not_found');
  assertText(await c.text('beta', ['clear-hostname']), /hostname cleared/);
  assertOk(await c.json('beta', ['set-hostname', 'beta']));

  const [ft, fj] = await Promise.all([c.text('alpha', ['find', 'beta']), c.json('alpha', ['find', 'beta'])]);
  assertText(ft, /Node ID:\s+2/);
  const f = assertOk(fj);
  assert.equal(f.node_id, betaId);
  assert.equal(f.address, '0:0000.0000.0002');
  assert.equal(f.hostname, 'beta');
  assert.equal(f.public, false);

  assert.deepEqual(assertOk(await c.json('beta', ['set-public'])), { status: 'ok', public: true });
  assert.equal(assertOk(await c.json('alpha', ['find', 'beta'])).public, true);
  assertText(await c.text('beta', ['set-private']), /visibility: private/);
  assert.equal(assertOk(await c.json('alpha', ['find', 'beta'])).public, false);
  assertText(await c.text('beta', ['set-public']), /visibility: public/);
  assert.deepEqual(assertOk(await c.json('beta', ['set-private'])), { status: 'ok', public: false });

  assert.deepEqual(assertOk(await c.json('alpha', ['set-tags', 'gpu', '#ml'])), { node_id: alphaId, tags: ['gpu', 'ml'] });
  // A private node's tags are hidden from strangers; public, everyone sees them.
  assert.deepEqual(assertOk(await c.json('beta', ['find', 'alpha'])).tags, []);
  assertOk(await c.json('alpha', ['set-public']));
  assert.deepEqual(assertOk(await c.json('beta', ['find', 'alpha'])).tags, ['gpu', 'ml']);
  assertOk(await c.json('alpha', ['set-private']));
  assertText(await c.text('alpha', ['set-tags', 'planner']), /tags set: #planner/);
  assert.deepEqual(assertOk(await c.json('alpha', ['info'])).tags, ['planner']);
  assertErr(await c.json('alpha', ['set-tags', 'a', 'b', 'c', 'd']), 'invalid_argument', 2);
  assertErr(await c.json('alpha', ['set-tags', 'Bad Tag']), 'invalid_argument', 2);
});

test('handshake, pending, reject, approve, trust, untrust (text and --json)', async () => {
  // gamma is used for the refusals so alpha↔beta trust stays clean.
  const gamma = await c.startDaemon('gamma');
  try {
    const ht = await c.text('gamma', ['handshake', 'alpha', 'gamma asks nicely']);
    assertText(ht, /handshake pending \(node 1\)/);
    await waitFor('alpha to list gamma as pending', async () => (await c.ok('alpha', ['pending'])).pending.some((p: any) => p.node_id === gamma.nodeId));
    const [pt, pj] = await Promise.all([c.text('alpha', ['pending']), c.json('alpha', ['pending'])]);
    assertText(pt, /gamma asks nicely/);
    const p = assertOk(pj).pending.find((x: any) => x.node_id === gamma.nodeId);
    assert.equal(p.justification, 'gamma asks nicely');
    assert.equal(p.hostname, 'gamma');
    assert.equal(p.address, gamma.address);
    assert.ok(!Number.isNaN(Date.parse(p.received_at)));
    assertText(await c.text('alpha', ['reject', String(gamma.nodeId), 'not today']), /rejected/);
    assert.deepEqual(assertOk(await c.json('alpha', ['pending'])).pending, []);
    assertErr(await c.json('alpha', ['reject', String(gamma.nodeId)]), 'not_found');
    assertErr(await c.json('alpha', ['approve', String(gamma.nodeId)]), 'not_found');

    // Second try, rejected through --json.
    assert.deepEqual(assertOk(await c.json('gamma', ['handshake', String(alphaId), 'again'])), { node_id: alphaId, status: 'pending' });
    await waitFor('the second request', async () => (await c.ok('alpha', ['pending'])).pending.length === 1);
    assert.deepEqual(assertOk(await c.json('alpha', ['reject', String(gamma.nodeId)])), { node_id: gamma.nodeId, status: 'rejected' });

    // Third try, approved in text; untrust in text.
    assertOk(await c.json('gamma', ['handshake', 'alpha', 'third time']));
    await waitFor('the third request', async () => (await c.ok('alpha', ['pending'])).pending.length === 1);
    assertText(await c.text('alpha', ['approve', String(gamma.nodeId)]), /trust established with node \d+/);
    await waitFor('gamma to see mutual trust', async () => (await c.ok('gamma', ['trust'])).trusted.some((t: any) => t.node_id === alphaId && t.mutual));
    assertText(await c.text('alpha', ['untrust', String(gamma.nodeId)]), /trust revoked for node \d+/);
    assertErr(await c.json('alpha', ['untrust', String(gamma.nodeId)]), 'not_found');
  } finally {
    await c.stopDaemon('gamma');
  }

  // alpha ↔ beta through --json, by hostname.
  assert.deepEqual(assertOk(await c.json('beta', ['handshake', 'alpha', 'beta wants status reports'])), { node_id: alphaId, status: 'pending' });
  await waitFor('alpha to list beta', async () => (await c.ok('alpha', ['pending'])).pending.some((x: any) => x.node_id === betaId));
  const t0 = performance.now();
  assert.deepEqual(assertOk(await c.json('alpha', ['approve', String(betaId)])), { node_id: betaId, status: 'approved' });
  await waitFor('beta to see mutual trust', async () => (await c.ok('beta', ['trust'])).trusted.some((t: any) => t.node_id === alphaId && t.mutual), 5000, 10);
  console.log(`# cli: approve → mutual trust on beta (incl. one pilotctl spawn per poll) ${Math.round(performance.now() - t0)} ms`);
  const [tt, tj] = await Promise.all([c.text('alpha', ['trust']), c.json('alpha', ['trust'])]);
  assertText(tt, /NODE ID\s+ADDRESS\s+HOSTNAME\s+MUTUAL[\s\S]*\b2\s+0:0000\.0000\.0002\s+beta\s+yes/);
  const tr = assertOk(tj).trusted;
  assert.equal(tr.length, 1);
  assert.equal(tr[0].node_id, betaId);
  assert.equal(tr[0].mutual, true);
  assert.equal(tr[0].address, '0:0000.0000.0002');
  assert.ok(!Number.isNaN(Date.parse(tr[0].approved_at)));
  assert.equal(assertOk(await c.json('beta', ['handshake', 'alpha'])).status, 'already_trusted');
  assertText(await c.text('beta', ['handshake', 'alpha']), /already trusted/);
});

test('connect in pipe mode to a recv on 1000 and to echo port 7; send; recv in text and --json', async () => {
  const request = '{"action":"status"}';
  // Echo: the reply is the request.
  const e = assertOk(await c.json('beta', ['connect', 'alpha', '7'], { stdin: request + '\n' }));
  assert.equal(e.response, request + '\n');
  assert.equal(e.target, '0:0000.0000.0001');
  assert.equal(e.port, 7);
  assert.equal(e.bytes_sent, request.length + 1);
  const et = await c.text('beta', ['connect', 'alpha', '7'], { stdin: request });
  assertText(et, /^\{"action":"status"\}\n$/);
  assert.equal(assertOk(await c.json('beta', ['connect', 'alpha', '7', '--message', 'hi'])).response, 'hi');

  // recv --json on alpha:1000, then connect from beta in pipe mode (the example, by hostname).
  const recv = spawnPilotctl(['--home', c.homeOf('alpha'), 'recv', '1000', '--timeout', '30s', '--json']);
  await waitRecvReady(recv);
  const cd = assertOk(await c.json('beta', ['connect', 'alpha', '1000'], { stdin: request }));
  assert.equal(cd.response, '', 'recv does not answer');
  assert.equal(cd.bytes_sent, request.length);
  assert.equal(cd.target, '0:0000.0000.0001');
  const rr = await recv.done;
  const rd = assertOk({ ...rr, data: lastJson(rr.stdout)?.data ?? null, error: lastJson(rr.stderr) });
  assert.equal(rd.timeout, false);
  assert.equal(rd.messages.length, 1);
  assert.equal(rd.messages[0].data, request);
  assert.equal(rd.messages[0].bytes, request.length);
  assert.equal(rd.messages[0].from, '0:0000.0000.0002');
  assert.equal(rd.messages[0].port, 1000);

  // recv in text mode (it says when it listens), send --data from beta by node id.
  const recvT = spawnPilotctl(['--home', c.homeOf('alpha'), 'recv', '1234', '--count', '1', '--timeout', '30s']);
  await waitFor('recv to listen', () => recvT.stderr().includes('listening on port 1234'), 20_000, 25);
  const s = assertOk(await c.json('beta', ['send', '1', '1234', '--data', 'plain text payload']));
  assert.equal(s.sent, 'plain text payload');
  assert.equal(s.port, 1234);
  assertText(await recvT.done, /^plain text payload\n$/);
  // send in text mode to echo: the reply is printed.
  assertText(await c.text('beta', ['send', '0:0000.0000.0001', '7', '--data', 'ping-me']), /^ping-me\n$/);
  // recv with nobody sending: timeout flag set, still exit 0 (as the original).
  const idle = assertOk(await c.json('alpha', ['recv', '1235', '--timeout', '300ms']));
  assert.deepEqual(idle, { messages: [], timeout: true });
});

test('listen receives datagrams (bounded --json, and text)', async () => {
  const sender = await c.client('beta');
  const sock = await sender.openDatagramSocketAsync(5100);
  assert.ok(sock.ok);
  try {
    for (const [port, mode] of [[5000, 'json'], [5001, 'text']] as const) {
      const l = mode === 'json'
        ? c.json('alpha', ['listen', String(port), '--count', '2', '--timeout', '20s'])
        : c.text('alpha', ['listen', String(port), '--count', '2', '--timeout', '20s']);
      // Datagrams are unreliable and the listener starts asynchronously: send until it has two.
      let done = false;
      void l.then(() => (done = true));
      let seq = 0;
      while (!done && seq < 200) {
        await sock.value.send('alpha', port, Buffer.from(`dgram-${seq++}`));
        await sleep(100);
      }
      const r = await l;
      if (mode === 'json') {
        const d = assertOk(r as JsonRun);
        assert.equal(d.messages.length, 2);
        assert.equal(d.timeout, false);
        assert.match(d.messages[0].data, /^dgram-\d+$/);
        assert.equal(d.messages[0].src_addr, '0:0000.0000.0002');
        assert.equal(d.messages[0].src_port, 5100);
        assert.equal(d.messages[0].bytes, d.messages[0].data.length);
      } else {
        assertText(r, /^\[0:0000\.0000\.0002:5100\] dgram-\d+\n\[0:0000\.0000\.0002:5100\] dgram-\d+\n$/);
      }
    }
    // Unbounded --json listen streams NDJSON, one datagram per line; SIGINT ends it.
    const [exe, ...pre] = binCommand('pilotctl');
    const child = spawn(exe!, [...pre, '--home', c.homeOf('alpha'), 'listen', '5002', '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    try {
      await waitFor('an NDJSON datagram line', async () => {
        await sock.value.send('alpha', 5002, Buffer.from('ndjson'));
        return out.includes('\n');
      }, 20_000, 150);
      const first = JSON.parse(out.split('\n')[0]!);
      assert.equal(first.data, 'ndjson');
      assert.equal(first.src_port, 5100);
    } finally {
      child.kill('SIGINT');
      await new Promise((r) => child.once('close', r));
    }
  } finally {
    sock.value.close();
  }
});

test('send-message, inbox, inbox --clear', async () => {
  const m = assertOk(await c.json('beta', ['send-message', 'alpha', '--data', 'hello from beta']));
  assert.equal(m.target, '0:0000.0000.0001');
  assert.equal(m.type, 'text');
  assert.equal(m.bytes, 'hello from beta'.length);
  assert.equal(m.ack, true);
  assertText(await c.text('beta', ['send-message', '1', '--data', '{"k":1}', '--type', 'json']), /sent json message \(7 bytes\)/);
  assertErr(await c.json('beta', ['send-message', 'alpha', '--data', '{bad', '--type', 'json']), 'invalid_argument', 2);

  const [it, ij] = await Promise.all([c.text('alpha', ['inbox']), c.json('alpha', ['inbox'])]);
  assertText(it, /Inbox \(2 messages\)[\s\S]*hello from beta/);
  const ib = assertOk(ij);
  assert.equal(ib.total, 2);
  const texts = ib.messages.map((x: any) => [x.type, x.data, x.from]);
  assert.deepEqual(texts.sort(), [['json', '{"k":1}', '0:0000.0000.0002'], ['text', 'hello from beta', '0:0000.0000.0002']]);
  for (const x of ib.messages) {
    assert.equal(typeof x.id, 'string');
    assert.equal(x.from_hostname, 'beta');
    assert.ok(!Number.isNaN(Date.parse(x.received_at)));
  }
  assert.equal(ib.dir, join(c.homeOf('alpha'), 'inbox'));
  assert.deepEqual(assertOk(await c.json('alpha', ['inbox', '--clear'])), { cleared: 2 });
  assert.deepEqual(assertOk(await c.json('alpha', ['inbox'])).messages, []);
  assertText(await c.text('alpha', ['inbox']), /inbox is empty/);
  assertOk(await c.json('beta', ['send-message', 'alpha', '--data', 'x']));
  assertText(await c.text('alpha', ['inbox', '--clear']), /cleared 1 message/);
});

test('send-file, received, received --clear (SHA-256 compared)', async () => {
  const file = join(c.root, 'payload.bin');
  const bytes = randomBytes(3 * 1024 * 1024 + 17);
  writeFileSync(file, bytes);
  const sha = createHash('sha256').update(bytes).digest('hex');
  const s = assertOk(await c.json('beta', ['send-file', 'alpha', file]));
  assert.equal(s.filename, 'payload.bin');
  assert.equal(s.bytes, bytes.length);
  assert.equal(s.sha256, sha);
  assert.equal(s.ack, true);
  assert.equal(s.destination, '0:0000.0000.0001');
  const [rt, rj] = await Promise.all([c.text('alpha', ['received']), c.json('alpha', ['received'])]);
  assertText(rt, /payload\.bin/);
  const r = assertOk(rj);
  assert.equal(r.total, 1);
  const f = r.files[0];
  assert.equal(f.name, 'payload.bin');
  assert.equal(f.bytes, bytes.length);
  assert.equal(f.sha256, sha);
  assert.equal(f.from, '0:0000.0000.0002');
  assert.equal(createHash('sha256').update(readFileSync(f.path)).digest('hex'), sha, 'the stored file matches');
  // Text mode send, relative path resolved against pilotctl's cwd.
  writeFileSync(join(c.root, 'note.txt'), 'a small note\n');
  assertText(await c.text('beta', ['send-file', 'alpha', 'note.txt'], { cwd: c.root }), /sent note\.txt \(13 B|sent note\.txt/);
  assertErr(await c.json('beta', ['send-file', 'alpha', join(c.root, 'missing.bin')]), 'not_found');
  assert.deepEqual(assertOk(await c.json('alpha', ['received', '--clear'])), { cleared: 2 });
  assertText(await c.text('alpha', ['received']), /no received files/);
  assertText(await c.text('alpha', ['received', '--clear']), /cleared 0 received file/);
});

test('subscribe and publish (bounded --json, text, wildcard)', async () => {
  // --json: beta subscribes to alpha's broker and publishes there; text: alpha on beta's broker.
  for (const [sub, broker, brokerAddr, mode] of [['beta', 'alpha', '0:0000.0000.0001', 'json'], ['alpha', 'beta', '0:0000.0000.0002', 'text']] as const) {
    const topic = `status-${mode}`;
    const args = ['--home', c.homeOf(sub), 'subscribe', broker, topic, '--count', '1', '--timeout', '30s', ...(mode === 'json' ? ['--json'] : [])];
    const run = spawnPilotctl(args);
    let isDone = false;
    void run.done.then(() => (isDone = true));
    // The subscription starts asynchronously; publish until it has seen one event.
    let n = 0;
    while (!isDone && n < 100) {
      if (mode === 'json') {
        const p = assertOk(await c.json(sub, ['publish', broker, topic, '--data', `nominal-${n}`]));
        assert.deepEqual(p, { target: brokerAddr, topic, bytes: `nominal-${n}`.length });
      } else {
        assertText(await c.text(sub, ['publish', broker, topic, '--data', `nominal-${n}`]), /published \d+ bytes to 'status-text' on 0:0000\.0000\.0002/);
      }
      n++;
      await sleep(150);
    }
    const r = await run.done;
    if (mode === 'json') {
      const d = assertOk({ ...r, data: lastJson(r.stdout)?.data ?? null, error: lastJson(r.stderr) });
      assert.equal(d.timeout, false);
      assert.equal(d.events.length, 1);
      assert.equal(d.events[0].topic, topic);
      assert.match(d.events[0].data, /^nominal-\d+$/);
      assert.equal(d.events[0].bytes, d.events[0].data.length);
    } else {
      assertText(r, /^\[status-text\] nominal-\d+\n$/);
    }
  }
  // A wildcard subscriber sees every topic.
  const run = spawnPilotctl(['--home', c.homeOf('beta'), 'subscribe', 'alpha', '*', '--count', '1', '--timeout', '30s', '--json']);
  let isDone = false;
  void run.done.then(() => (isDone = true));
  while (!isDone) {
    assertOk(await c.json('beta', ['publish', 'alpha', 'any-topic', '--data', 'remote event']));
    await sleep(150);
  }
  const r = await run.done;
  const d = lastJson(r.stdout).data;
  assert.equal(d.events[0].topic, 'any-topic');
  assert.equal(d.events[0].data, 'remote event');
  assertErr(await c.json('beta', ['publish', 'alpha', 'x']), 'invalid_argument', 2);
});

test('ping, bench, traceroute (field names as the original)', async () => {
  const [pt, pj] = await Promise.all([
    c.text('beta', ['ping', 'alpha', '--count', '3', '--interval', '100ms']),
    c.json('beta', ['ping', 'alpha', '--count', '5', '--interval', '100ms']),
  ]);
  assertText(pt, /^PING 0:0000\.0000\.0001\n(seq=\d bytes=\d+ time=[\d.]+ms\n){3}--- 0:0000\.0000\.0001: 3 sent, 3 received/);
  const p = assertOk(pj);
  assert.equal(p.target, '0:0000.0000.0001');
  assert.equal(p.timeout, false);
  assert.equal(p.results.length, 5);
  p.results.forEach((x: any, i: number) => {
    assert.equal(x.seq, i);
    assert.ok(x.bytes > 0);
    assert.equal(typeof x.rtt_ms, 'number');
    assert.equal(x.error, undefined);
  });
  const rtts = p.results.map((x: any) => x.rtt_ms).sort((a: number, b: number) => a - b);
  console.log(`# ping RTT over the CLI (5 pings): min ${rtts[0]} ms, median ${rtts[2]} ms, max ${rtts[4]} ms`);

  const [bt, bj] = [await c.text('beta', ['bench', 'alpha', '1']), await c.json('beta', ['bench', 'alpha', '4'])];
  assertText(bt, /BENCH 0:0000\.0000\.0001 — sending 1\.0 MB via echo port\n\s+Sent:\s+1\.0 MB in \d+ms \([\d.]+ MB\/s\)\n\s+Echoed:\s+1\.0 MB/);
  const b = assertOk(bj);
  assert.equal(b.target, '0:0000.0000.0001');
  assert.equal(b.sent_bytes, 4 * 1024 * 1024);
  assert.equal(b.recv_bytes, 4 * 1024 * 1024);
  assert.ok(b.send_mbps > 0);
  assert.ok(b.total_mbps > 0);
  assert.ok(b.send_duration_ms <= b.total_duration_ms, JSON.stringify(b));
  console.log(`# bench 4 MB over the CLI: send ${b.send_mbps.toFixed(1)} MB/s, round trip ${b.total_mbps.toFixed(1)} MB/s`);

  const [tt, tj] = await Promise.all([c.text('beta', ['traceroute', 'alpha']), c.json('beta', ['traceroute', 'alpha'])]);
  assertText(tt, /TRACEROUTE 0:0000\.0000\.0001\n\s+1\s+0:0000\.0000\.0001\s+setup=[\d.]+ms/);
  const t = assertOk(tj);
  assert.equal(t.target, '0:0000.0000.0001');
  assert.equal(typeof t.setup_ms, 'number');
  assert.equal(t.rtt_samples.length, 3);
  assert.equal(t.path, 'direct');
});

test('peers, connections, disconnect (an open stream is closed)', async () => {
  const [pt, pj] = await Promise.all([c.text('beta', ['peers']), c.json('beta', ['peers'])]);
  assertText(pt, /NODE ID[\s\S]*\b1\s+0:0000\.0000\.0001\s+alpha/);
  const p = assertOk(pj);
  assert.equal(p.total, 1);
  const e = p.peers[0];
  assert.equal(e.node_id, alphaId);
  assert.equal(e.path, 'direct');
  assert.equal(e.encrypted, true);
  assert.equal(e.trusted, true);
  assert.match(e.endpoint, /^127\.0\.0\.1:\d+$/);
  assert.equal(assertOk(await c.json('beta', ['peers', '--search', 'nobody'])).total, 0);

  // Hold a stream open through the SDK, find it, close it with pilotctl disconnect.
  const sdk = await c.client('beta');
  const s = await sdk.dial('alpha', 7);
  assert.ok(s.ok, !s.ok ? s.error.message : '');
  const stream = s.value;
  const closed = new Promise<string>((resolve) => {
    stream.on('error', (e2: Error) => resolve(`error: ${e2.message}`));
    stream.on('close', () => resolve('close'));
  });
  stream.write('abc');
  assert.equal((await readBytes(stream, 3)).toString(), 'abc');
  const [ct, cj] = await Promise.all([c.text('beta', ['connections']), c.json('beta', ['connections'])]);
  assertText(ct, /Active connections: 1/);
  const cs = assertOk(cj);
  assert.equal(cs.total, 1);
  const conn = cs.connections[0];
  assert.equal(conn.peer_node_id, alphaId);
  assert.equal(conn.remote_port, 7);
  assert.equal(conn.remote_addr, '0:0000.0000.0001');
  for (const k of ['id', 'local_port', 'cwnd_bytes', 'srtt_ms', 'bytes_in_flight', 'bytes_sent', 'bytes_received', 'retransmits']) {
    assert.equal(typeof conn[k], 'number', k);
  }
  assert.ok(conn.bytes_sent >= 3);
  assert.deepEqual(assertOk(await c.json('beta', ['disconnect', String(conn.id)])), { conn_id: conn.id });
  const how = await Promise.race([closed, sleep(5000).then(() => 'still open')]);
  assert.notEqual(how, 'still open', 'disconnect must close the SDK stream');
  await waitFor('no connections', async () => (await c.ok('beta', ['connections'])).total === 0, 5000);
  assertText(await c.text('beta', ['connections']), /no active connections/);
  assertErr(await c.json('beta', ['disconnect', String(conn.id)]), 'not_found');
  const dt = await c.text('beta', ['disconnect', '99999']);
  assert.equal(dt.code, 1);
  assertErr(await c.json('beta', ['disconnect', 'x']), 'invalid_argument', 2);
});

test('config and context', async () => {
  const [ct, cj] = await Promise.all([c.text('alpha', ['config']), c.json('alpha', ['config'])]);
  assert.equal(ct.code, 0, explain(ct));
  const cfg = assertOk(cj);
  assert.equal(cfg.home, c.homeOf('alpha'));
  assert.equal(cfg.socket, join(c.homeOf('alpha'), 'pilot.sock'));
  assert.deepEqual(assertOk(await c.json('alpha', ['config', '--set', 'log_level=debug'])), { key: 'log_level', value: 'debug' });
  assertText(await c.text('alpha', ['config', '--set', 'public=false']), /public = false/);
  const cfg2 = assertOk(await c.json('alpha', ['config']));
  assert.equal(cfg2.log_level, 'debug');
  assert.equal(cfg2.public, false);
  assertErr(await c.json('alpha', ['config', '--set', 'nokey']), 'invalid_argument', 2);

  const [xt, xj] = await Promise.all([c.text('alpha', ['context']), c.json('alpha', ['context'])]);
  assert.equal(xt.code, 0);
  const ctx = assertOk(xj);
  const names = [
    'daemon start', 'daemon stop', 'daemon status', 'info', 'set-hostname', 'clear-hostname', 'find', 'set-public', 'set-private', 'set-tags',
    'handshake', 'pending', 'approve', 'reject', 'trust', 'untrust', 'send', 'recv', 'connect', 'listen', 'send-message', 'inbox',
    'send-file', 'received', 'subscribe', 'publish', 'ping', 'bench', 'traceroute', 'peers', 'connections', 'disconnect', 'config', 'context',
  ];
  for (const n of names) assert.ok(ctx.commands[n], `context lacks ${n}`);
  assert.deepEqual(Object.keys(ctx.error_codes).sort(), ['already_exists', 'connection_failed', 'daemon_unverified', 'fingerprint_mismatch', 'hash_mismatch', 'identity_changed', 'internal', 'invalid_argument', 'key_retired', 'not_found', 'not_running', 'permission_denied', 'policy_denied', 'proxy_failed', 'quota_exceeded', 'timeout', 'unsafe_home', 'verify_failed']);
  assert.ok(ctx.commands['daemon start'].flags.some((f: any) => f.name === '--idle-timeout'), 'daemon start forwards --idle-timeout');
});

test('usage errors exit 2 with a JSON error on stderr; unknown commands and flags', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['frobnicate'], /unknown command/],
    [['daemon'], /missing subcommand/],
    [['daemon', 'fly'], /unknown daemon subcommand/],
    [['ping'], /missing <peer>/],
    [['ping', 'alpha', '--bogus'], /unknown flag --bogus/],
    [['ping', 'Not_A_Host'], /invalid peer/],
    [['ping', '0:zzzz.0000.0001'], /./],
    [['ping', '99999999999'], /out of range/],
    [['ping', 'alpha', '--count', '-1'], /--count/],
    [['send', 'alpha', '70000', '--data', 'x'], /invalid port/],
    [['send', 'alpha', '0', '--data', 'x'], /invalid port/],
    [['send', 'alpha', '7'], /--data is required/],
    [['bench', 'alpha', '0'], /invalid size/],
    [['bench', 'alpha', 'lots'], /invalid size/],
    [['approve', 'beta'], /invalid node_id/],
    [['set-hostname', 'UPPER'], /invalid hostname/],
    [['set-hostname', 'a'.repeat(64)], /invalid hostname/],
    [['ping', 'alpha', '--timeout', 'soon'], /invalid --timeout/],
    [['daemon', 'start', '--registry', 'nohostport'], /not host:port/],
  ];
  const rs = await Promise.all(cases.map(([args]) => c.json('alpha', args)));
  rs.forEach((r, i) => {
    const e = assertErr(r, 'invalid_argument', 2);
    assert.match(e.message, cases[i]![1], `${cases[i]![0].join(' ')}: ${e.message}`);
  });
  // Text mode: the message and hint go to stderr, exit 2.
  const t = await c.text('alpha', ['send', 'alpha', '70000', '--data', 'x']);
  assert.equal(t.code, 2);
  assert.equal(t.stdout, '');
  assert.match(t.stderr, /invalid port '70000'/);
  assert.match(t.stderr, /1\.\.65535/);
});

// The daemon's hostname cache answered forever until 58d624d.
test('a renamed peer: its old hostname stops resolving on a node that looked it up before', async () => {
  assertOk(await c.json('alpha', ['set-hostname', 'alpha-three']));
  try {
    assert.equal(assertOk(await c.json('beta', ['find', 'alpha-three'])).node_id, alphaId);
    assertOk(await c.json('alpha', ['set-hostname', 'alpha']));
    assertErr(await c.json('beta', ['find', 'alpha-three']), 'not_found');
  } finally {
    await c.json('alpha', ['set-hostname', 'alpha']);
  }
});
