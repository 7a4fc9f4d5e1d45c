// Conformance against original v0.5 binaries (never built or shipped here), found under
// ../shared/interop/original-*/ beside the project root, or named by environment variables (which win):
//   PILOT_INTEROP_RENDEZVOUS  original `rendezvous`  → our wire codecs and signatures against its registry + beacon
//   PILOT_INTEROP_DAEMON      original `daemon`      → it registers, heartbeats and resolves through OUR rendezvous
//   PILOT_INTEROP_PILOTCTL    original `pilotctl`    → it drives our legacy IPC server (src/ipc/legacy-server.ts)
// Without any of them this file reports one skipped test with one line saying where it looked.
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { challenge, encodeRegistryFrame, RegistryFrameDecoder, type RegistryMessage } from '../../src/wire/registry-frame.js';
import { decodeBeaconMessage, encodeBeaconMessage } from '../../src/wire/beacon-message.js';
import { generateIdentity, identityToJson, sign, toBase64, type Identity } from '../../src/crypto/identity.js';
import { serveLegacyIpc } from '../../src/ipc/legacy-server.js';
import { frameLegacyIpc, LegacyCmd } from '../../src/ipc/legacy-protocol.js';
import { writeAddr } from '../../src/wire/address.js';
import { writeU16 } from '../../src/wire/bytes.js';
import { binCommand } from '../helpers/bins.js';
import { FakeNode } from '../unit/ipc/fake-node.js';
import { Cluster, readBytes, sleep, waitFor } from '../integration/harness.js';

/** The project root: the nearest ancestor of this file (test/interop or dist/test/interop) with a package.json. */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

/** `../shared/interop/original-*<name>` beside the project (the newest snapshot first), or undefined. */
function originalBinary(name: string): string | undefined {
  const base = resolvePath(projectRoot(), '..', 'shared', 'interop');
  let dirs: string[];
  try {
    dirs = readdirSync(base).filter((d) => d.startsWith('original-')).sort().reverse();
  } catch {
    return undefined;
  }
  for (const d of dirs) {
    const file = join(base, d, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not in this snapshot
    }
  }
  return undefined;
}

const RENDEZVOUS = process.env.PILOT_INTEROP_RENDEZVOUS || originalBinary('rendezvous');
const DAEMON = process.env.PILOT_INTEROP_DAEMON || originalBinary('daemon');
const PILOTCTL = process.env.PILOT_INTEROP_PILOTCTL || originalBinary('pilotctl');

const isAnySet = Boolean(RENDEZVOUS || DAEMON || PILOTCTL);
/** The per-binary tests exist only when some binary is found, so a run without them shows one skip line. */
const binTest = (isAnySet ? test : () => undefined) as typeof test;
if (!isAnySet) {
  test('interop conformance with original v0.5 binaries', {
    skip: 'no original binaries in ../shared/interop/original-*/ (or PILOT_INTEROP_RENDEZVOUS/_DAEMON/_PILOTCTL)',
  }, () => {});
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

const children: ChildProcess[] = [];
function start(cmd: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const c = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  c.stderr!.on('data', () => {});
  children.push(c);
  return c;
}
const killChildren = (): void => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
};
// Their stdio pipes would keep this file's process alive after the last test.
after(killChildren);
process.once('exit', killChildren);

class RegistryConn {
  private dec = new RegistryFrameDecoder();
  private queue: RegistryMessage[] = [];
  private waiters: ((m: RegistryMessage) => void)[] = [];
  constructor(private readonly sock: Socket) {
    sock.on('data', (c) => {
      const r = this.dec.push(c);
      if (!r.ok) return;
      for (const m of r.value) (this.waiters.shift() ?? ((x: RegistryMessage) => this.queue.push(x)))(m);
    });
  }
  static async open(port: number): Promise<RegistryConn> {
    for (let i = 0; i < 50; i++) {
      const s = connect(port, '127.0.0.1');
      const okConn = await new Promise<boolean>((r) => {
        s.once('connect', () => r(true));
        s.once('error', () => r(false));
      });
      if (okConn) return new RegistryConn(s);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`nothing listens on 127.0.0.1:${port}`);
  }
  async call(m: RegistryMessage): Promise<RegistryMessage> {
    const f = encodeRegistryFrame(m);
    assert.ok(f.ok);
    this.sock.write(f.value);
    const q = this.queue.shift();
    if (q) return q;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply to ${String(m.type)}`)), 5000);
      this.waiters.push((x) => {
        clearTimeout(t);
        resolve(x);
      });
    });
  }
  close(): void {
    this.sock.destroy();
  }
}

const sig = (id: Identity, text: string) => toBase64(sign(id, new TextEncoder().encode(text)));

binTest('original rendezvous: our codecs and signatures work against its registry and beacon', { skip: RENDEZVOUS ? false : 'PILOT_INTEROP_RENDEZVOUS not set' }, async () => {
  const reg = await freePort();
  const beacon = await freePort();
  start([RENDEZVOUS!, '-registry-addr', `127.0.0.1:${reg}`, '-beacon-addr', `127.0.0.1:${beacon}`]);
  const c = await RegistryConn.open(reg);
  const id = generateIdentity();
  const r = await c.call({ type: 'register', listen_addr: '127.0.0.1:40000', public_key: toBase64(id.publicKey) });
  assert.equal(r.type, 'register_ok', JSON.stringify(r));
  const node = r.node_id as number;
  const h = await c.call({ type: 'set_hostname', node_id: node, hostname: `conf-${node}`, signature: sig(id, challenge.setHostname(node)) });
  assert.equal(h.type, 'set_hostname_ok', JSON.stringify(h));
  const hb = await c.call({ type: 'heartbeat', node_id: node, signature: sig(id, challenge.heartbeat(node)) });
  assert.equal(hb.type, 'heartbeat_ok');
  const bad = await c.call({ type: 'heartbeat', node_id: node, signature: sig(generateIdentity(), challenge.heartbeat(node)) });
  assert.equal(bad.type, 'error', 'a wrong signature is refused with {type:error}');
  const l = await c.call({ type: 'lookup', node_id: node });
  assert.equal(l.type, 'lookup_ok');
  assert.equal(l.public_key, toBase64(id.publicKey));
  c.close();
  // Beacon: discover → observed endpoint.
  const u = createSocket('udp4');
  await new Promise<void>((res) => u.bind(0, '127.0.0.1', () => res()));
  const msg = encodeBeaconMessage({ kind: 'discover', nodeId: node });
  assert.ok(msg.ok);
  const reply = await new Promise<Buffer>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no discover reply')), 3000);
    u.once('message', (b) => {
      clearTimeout(t);
      resolve(b);
    });
    u.send(msg.value, beacon, '127.0.0.1');
  });
  const d = decodeBeaconMessage(new Uint8Array(reply));
  assert.ok(d.ok && d.value.kind === 'discover_reply');
  assert.equal(d.value.port, (u.address() as { port: number }).port);
  u.close();
});

binTest('original daemon: registers, heartbeats and is found through our rendezvous', { skip: DAEMON ? false : 'PILOT_INTEROP_DAEMON not set' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-conf-'));
  try {
    const ours = start([...binCommand('pilot-rendezvous'), '--registry-addr', '127.0.0.1:0', '--beacon-addr', '127.0.0.1:0', '--compat-addr', 'off']);
    const line = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('our rendezvous did not start')), 15000);
      ours.stdout!.once('data', (b: Buffer) => {
        clearTimeout(t);
        resolve(b.toString());
      });
    });
    const addrs = JSON.parse(line) as { registry: string; beacon: string };
    const identity = generateIdentity();
    writeFileSync(join(dir, 'identity.json'), JSON.stringify(identityToJson(identity)));
    const sock = join(dir, 'pilot.sock');
    start([DAEMON!, '-registry', addrs.registry, '-beacon', addrs.beacon, '-listen', '127.0.0.1:0', '-socket', sock, '-identity', join(dir, 'identity.json'), '-hostname', 'orig-conf'], { HOME: dir });
    const c = await RegistryConn.open(Number(addrs.registry.split(':').pop()));
    let found: RegistryMessage | null = null;
    for (let i = 0; i < 100 && !found; i++) {
      const r = await c.call({ type: 'resolve_hostname', hostname: 'orig-conf' });
      if (r.type === 'resolve_hostname_ok') found = r;
      else await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(found, 'the original daemon registered and set its hostname on our registry');
    const l = await c.call({ type: 'lookup', node_id: found.node_id as number });
    assert.equal(l.public_key, toBase64(identity.publicKey), 'with the identity we gave it');
    c.close();
    if (PILOTCTL) {
      // The original pilotctl against the original daemon, which uses our rendezvous.
      const out = await run(PILOTCTL, ['--json', 'info'], { PILOT_SOCKET: sock, HOME: dir });
      assert.equal(JSON.parse(out).status, 'ok');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 15000 }, (_e, stdout, stderr) => resolve(stdout || stderr));
  });
}

binTest('original pilotctl drives our legacy IPC server', { skip: PILOTCTL ? false : 'PILOT_INTEROP_PILOTCTL not set' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-conf-ctl-'));
  const node = new FakeNode();
  const srv = await serveLegacyIpc(node, { socketPath: join(dir, 'pilot.sock') });
  assert.ok(srv.ok);
  try {
    // HOME: the original pilotctl writes ~/.pilot/config.json on set-hostname.
    const env = { PILOT_SOCKET: srv.value.socketPath, HOME: dir };
    const info = JSON.parse(await run(PILOTCTL!, ['--json', 'info'], env)) as { status: string; data: Record<string, unknown> };
    assert.equal(info.status, 'ok');
    assert.equal(info.data.node_id, 5);
    const find = JSON.parse(await run(PILOTCTL!, ['--json', 'find', 'agent-alpha'], env)) as { status: string };
    assert.equal(find.status, 'ok');
    const pending = JSON.parse(await run(PILOTCTL!, ['--json', 'pending'], env)) as { status: string };
    assert.equal(pending.status, 'ok');
    const host = JSON.parse(await run(PILOTCTL!, ['--json', 'set-hostname', 'from-original'], env)) as { status: string };
    assert.equal(host.status, 'ok');
    assert.equal(node.hostname, 'from-original');
  } finally {
    await srv.value.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// ─────────────────────────── live: original daemons ↔ our daemon, on each rendezvous ───────────────────────────
// One lab per rendezvous (ours, the original's): our daemon `ours`, an original daemon `orig-a` that we reach
// first (we handshake it, we ping it…) and an original daemon `orig-b` that reaches us first — so both
// directions start from no tunnel at all. The original daemons run with `-keepalive 1s`: their heartbeat
// loop also polls relayed handshakes (30 s by default), so trust arrives in about a second. Every original
// process gets its own HOME (its inbox, received files and pilotctl config live under ~/.pilot).

interface OriginalNode {
  name: string;
  home: string;
  socket: string;
  nodeId: number;
  address: string;
  child: ChildProcess;
}

interface CtlResult {
  code: number | null;
  doc: { status: string; data?: any; code?: string; message?: string } | null;
  out: string;
}

/** The original pilotctl against one original daemon, with --json; the envelope from stdout or stderr. */
function originalCtl(node: OriginalNode, args: string[], timeoutMs = 30_000): Promise<CtlResult> {
  return new Promise((resolve) => {
    execFile(PILOTCTL!, ['--json', ...args], { env: { ...process.env, HOME: node.home, PILOT_SOCKET: node.socket }, timeout: timeoutMs, maxBuffer: 1 << 24 }, (e, stdout, stderr) => {
      const text = (stdout || stderr).trim();
      let doc: CtlResult['doc'] = null;
      try {
        doc = JSON.parse(text.split('\n').pop() ?? '');
      } catch {
        doc = null;
      }
      resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, doc, out: `${stdout}\n${stderr}` });
    });
  });
}

async function originalOk(node: OriginalNode, args: string[], timeoutMs?: number): Promise<any> {
  const r = await originalCtl(node, args, timeoutMs);
  assert.equal(r.doc?.status, 'ok', `original pilotctl ${args.join(' ')} on ${node.name}: ${r.out}`);
  return r.doc!.data;
}

async function freeUdpPort(): Promise<number> {
  const u = createSocket('udp4');
  await new Promise<void>((res) => u.bind(0, '127.0.0.1', () => res()));
  const p = (u.address() as { port: number }).port;
  await new Promise<void>((res) => u.close(() => res()));
  return p;
}

async function startOriginalRendezvous(): Promise<{ registry: string; beacon: string; child: ChildProcess }> {
  const registry = `127.0.0.1:${await freePort()}`;
  const beacon = `127.0.0.1:${await freeUdpPort()}`;
  const child = start([RENDEZVOUS!, '-registry-addr', registry, '-beacon-addr', beacon]);
  (await RegistryConn.open(Number(registry.split(':')[1]))).close();
  return { registry, beacon, child };
}

async function startOriginalDaemon(root: string, name: string, registry: string, beacon: string): Promise<OriginalNode> {
  const home = join(root, name);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const socket = join(home, 'p.sock');
  const child = spawn(DAEMON!, [
    '-registry', registry, '-beacon', beacon, '-listen', '127.0.0.1:0', '-socket', socket,
    '-identity', join(home, 'identity.json'), '-hostname', name, '-keepalive', '1s',
  ], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, HOME: home } });
  children.push(child);
  let log = '';
  child.stderr!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-20_000)));
  const node: OriginalNode = { name, home, socket, nodeId: 0, address: '', child };
  const info = await waitFor(`original daemon ${name} to register`, async () => {
    const r = await originalCtl(node, ['info'], 5000);
    return r.doc?.status === 'ok' && (r.doc.data.node_id as number) > 0 ? r.doc.data : null;
  }, 20_000, 200).catch((e: Error) => {
    throw new Error(`${e.message}\n--- its log\n${log}`);
  });
  node.nodeId = info.node_id;
  node.address = info.address;
  return node;
}

function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const t = setTimeout(() => c.kill('SIGKILL'), 3000);
    c.once('exit', () => {
      clearTimeout(t);
      res();
    });
    c.kill('SIGTERM');
  });
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const LIVE_SKIP = !DAEMON || !PILOTCTL ? 'the original daemon and pilotctl are needed' : false;

for (const rv of ['ours', 'original'] as const) {
  const skip = LIVE_SKIP || (rv === 'original' && !RENDEZVOUS ? 'the original rendezvous is needed' : false);
  binTest(`live on ${rv === 'ours' ? 'our' : 'the original'} rendezvous: original daemons ↔ our daemon`, { skip, timeout: 120_000 }, async (t) => {
    const orv = rv === 'original' ? await startOriginalRendezvous() : null;
    const cluster = await Cluster.start(`ix${rv[0]}`, ['ours'], orv ? { external: orv } : {});
    const root = mkdtempSync(join(tmpdir(), 'pi-ixo-'));
    const originals: OriginalNode[] = [];
    t.after(async () => {
      await cluster.close();
      await Promise.all(originals.map((o) => stopChild(o.child)));
      if (orv) await stopChild(orv.child);
      rmSync(root, { recursive: true, force: true });
    });
    const [a, b] = await Promise.all([
      startOriginalDaemon(root, 'orig-a', cluster.registry, cluster.beacon),
      startOriginalDaemon(root, 'orig-b', cluster.registry, cluster.beacon),
    ]);
    originals.push(a, b);
    const ours = cluster.node('ours');
    const c = await cluster.client('ours');
    // Relayed path: every frame of this one goes through the beacon; the original answers there too.
    // It also serves the original's IPC (--legacy-socket), for the original pilotctl.
    const legacySocket = join(cluster.root, 'legacy.sock');
    const relayNode = await cluster.startDaemon('ours-relay', ['--relay-only', '--legacy-socket', legacySocket]);
    const cr = await cluster.client('ours-relay');

    await t.test('register + find: ours finds the original, the original finds ours', { timeout: 10_000 }, async () => {
      const f = await c.find('orig-a');
      assert.ok(f.ok, f.ok ? '' : f.error.message);
      assert.equal(f.value.node_id, a.nodeId);
      if (rv === 'ours') {
        // Issue 10: on our rendezvous a private node of ours is invisible to a stranger, original or not; the
        // original finds it once trust exists (checked after the handshake below).
        const g = await originalCtl(a, ['find', 'ours']);
        assert.equal(g.doc?.status, 'error', `a stranger found our private node: ${g.out}`);
      } else {
        const g = await originalOk(a, ['find', 'ours']);
        assert.equal(g.node_id, ours.nodeId);
      }
    });

    // Our daemon polls an original registry every 5 s (ours pushes); the originals poll every second here.
    await t.test('handshake → pending → approve → mutual trust, ours → original and original → ours', { timeout: 45_000 }, async () => {
      for (const x of [c, cr]) {
        const h = await x.handshake(String(a.nodeId), 'conformance');
        assert.ok(h.ok, h.ok ? '' : h.error.message);
      }
      await waitFor('our requests pending on orig-a', async () => {
        const p = await originalOk(a, ['pending']);
        const from = new Set((p.pending as { node_id: number }[]).map((x) => x.node_id));
        return from.has(ours.nodeId) && from.has(relayNode.nodeId);
      }, 25_000, 250);
      await originalOk(a, ['approve', String(ours.nodeId)]);
      await originalOk(a, ['approve', String(relayNode.nodeId)]);
      await originalOk(b, ['handshake', String(ours.nodeId), 'conformance']);
      await waitFor('orig-b request pending on ours', async () => {
        const p = await c.pending();
        return p.ok && p.value.pending.some((x) => x.node_id === b.nodeId);
      }, 25_000, 100);
      const ap = await c.approve(b.nodeId);
      assert.ok(ap.ok, ap.ok ? '' : ap.error.message);
      await waitFor('trust on all sides', async () => {
        const tr = await c.trusted();
        if (!tr.ok) return false;
        const mine = new Set(tr.value.trusted.filter((x) => x.mutual).map((x) => x.node_id));
        if (!mine.has(a.nodeId) || !mine.has(b.nodeId)) return false;
        for (const o of [a, b]) {
          const t2 = await originalOk(o, ['trust']);
          if (!(t2.trusted as { node_id: number }[]).some((x) => x.node_id === ours.nodeId)) return false;
        }
        const tr2 = await cr.trusted();
        return tr2.ok && tr2.value.trusted.some((x) => x.node_id === a.nodeId && x.mutual);
      }, 25_000, 250);
      const g = await originalOk(a, ['find', 'ours']);
      assert.equal(g.node_id, ours.nodeId, 'the original finds our private node once it is trusted');
    });

    await t.test('ping ours → original (first contact well within one 5 s handshake timeout, on both rendezvous)', { timeout: 20_000 }, async () => {
      const r = await c.ping(String(a.nodeId), { count: 2, intervalMs: 200, timeoutMs: 15_000 });
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      assert.ok(r.value.results.some((x) => !x.error), JSON.stringify(r.value.results));
      const first = r.value.results[0]!;
      console.log(`# first contact ours → original on ${rv} rendezvous: ${first.error ?? `${first.rtt_ms.toFixed(1)} ms`}`);
      // Our registry marks an original client's node v0.5 (lookup_ok suite): PILA at once. The original's
      // registry says nothing: a probing PILA goes out beside the Noise initiation (only originals answer it).
      // Before: ~5.6 s (a full Noise timeout first). 4 s leaves room for a loaded CI machine.
      assert.ok(!first.error && first.rtt_ms < 4000, `first probe: ${JSON.stringify(first)}`);
    });

    await t.test('ping original → ours (the original opens the tunnel)', { timeout: 20_000 }, async () => {
      const r = await originalOk(b, ['ping', String(ours.nodeId), '--count', '2'], 15_000);
      assert.ok((r.results as { error?: string }[]).some((x) => !x.error), JSON.stringify(r));
    });

    await t.test('connect: a stream with data both ways, ours → original echo and original → our echo', { timeout: 15_000 }, async () => {
      const s = await c.dial(String(a.nodeId), 7, { timeoutMs: 10_000 });
      assert.ok(s.ok, s.ok ? '' : s.error.message);
      const payload = randomBytes(20_000);
      s.value.write(payload);
      const back = await readBytes(s.value, payload.length, 10_000);
      s.value.destroy();
      assert.equal(sha256(back), sha256(payload), 'the original echoed every byte');
      const r = await originalOk(b, ['connect', String(ours.nodeId), '7', '--message', 'over-the-v0.5-stream'], 15_000);
      assert.equal(r.response, 'over-the-v0.5-stream');
    });

    await t.test('send-message text, json, binary: ours → original and original → ours', { timeout: 20_000 }, async () => {
      const sent: [string, 'text' | 'json' | 'binary'][] = [['plain text ✓', 'text'], ['{"k":[1,2]}', 'json'], ['raw-bytes', 'binary']];
      for (const [data, type] of sent) {
        const r = await c.sendMessage(String(a.nodeId), data, type);
        assert.ok(r.ok, r.ok ? '' : r.error.message);
      }
      const inbox = await originalOk(a, ['inbox']);
      const got = (inbox.messages as { type: string; data: string; from: string }[]).filter((m) => m.from === ours.address);
      for (const [data, type] of sent) assert.ok(got.some((m) => m.type === type.toUpperCase() && m.data === data), `${type} in ${JSON.stringify(got)}`);
      for (const [data, type] of sent) await originalOk(b, ['send-message', String(ours.nodeId), '--type', type, '--data', data], 15_000);
      const mine = await c.inbox();
      assert.ok(mine.ok);
      const fromB = mine.value.messages.filter((m) => m.from === b.address);
      for (const [data, type] of sent) {
        assert.ok(fromB.some((m) => m.type === type && (type === 'binary' ? Buffer.from(m.data, 'base64').toString() : m.data) === data), `${type} in ${JSON.stringify(fromB)}`);
      }
    });

    await t.test('datagrams: ours → original `pilotctl listen`, original (its IPC SendTo) → our datagram socket', { timeout: 20_000 }, async () => {
      // The original pilotctl receives datagrams (`listen <port>`) but sends none (`send` is a stream; only its
      // driver's SendTo, IPC command 0x0B, sends one): the original → ours direction speaks that IPC command on
      // the original daemon's socket. Datagrams are unreliable and `listen` has no readiness signal: resend
      // every 250 ms until received.
      const theirs = originalCtl(a, ['listen', '5105', '--count', '1', '--timeout', '10s'], 15_000);
      let isDone = false;
      void theirs.then(() => (isDone = true));
      const sock = await c.openDatagramSocketAsync(5106);
      assert.ok(sock.ok, sock.ok ? '' : sock.error.message);
      for (let i = 0; i < 40 && !isDone; i++) {
        const s1 = await sock.value.send(String(a.nodeId), 5105, Buffer.from('dgram-to-the-original'));
        assert.ok(s1.ok, s1.ok ? '' : s1.error.message);
        await sleep(250);
      }
      const r = await theirs;
      assert.equal(r.doc?.status, 'ok', r.out);
      const got = r.doc!.data.messages?.[0];
      assert.equal(got?.data, 'dgram-to-the-original', r.out);
      assert.equal(got?.src_addr, ours.address, r.out);

      const ipc = connect(b.socket);
      await new Promise<void>((res, rej) => ipc.once('connect', res).once('error', rej));
      const payload = Buffer.from('dgram-from-the-original');
      const msg = new Uint8Array(1 + 6 + 2 + payload.length);
      msg[0] = LegacyCmd.SendTo;
      writeAddr(msg, 1, { network: 0, node: ours.nodeId });
      writeU16(msg, 7, 5106);
      msg.set(payload, 9);
      let dg = null;
      for (let i = 0; i < 40 && !dg; i++) {
        ipc.write(frameLegacyIpc(msg));
        dg = await sock.value.recv(250);
      }
      ipc.destroy();
      sock.value.close();
      assert.ok(dg, 'our datagram socket got the original’s datagram');
      assert.equal(Buffer.from(dg.data).toString(), 'dgram-from-the-original');
      assert.equal(dg.fromNodeId, b.nodeId);
    });

    await t.test('send-file: 5 MB ours → original, 1 MB original → ours (its IPC caps a message at 1 MiB), SHA-256 equal', { timeout: 40_000 }, async () => {
      const big = randomBytes(5_000_000);
      const small = randomBytes(1_000_000);
      const bigPath = join(root, 'five.bin');
      const smallPath = join(root, 'one.bin');
      writeFileSync(bigPath, big);
      writeFileSync(smallPath, small);
      const s = await c.sendFile(String(a.nodeId), bigPath);
      assert.ok(s.ok, s.ok ? '' : s.error.message);
      const rec = await originalOk(a, ['received']);
      const file = (rec.files as { name: string; path: string; bytes: number }[]).find((f) => f.name.startsWith('five') && f.bytes === big.length);
      assert.ok(file, JSON.stringify(rec));
      assert.equal(sha256(readFileSync(file.path)), sha256(big));
      await originalOk(b, ['send-file', String(ours.nodeId), smallPath], 30_000);
      const mine = await c.received();
      assert.ok(mine.ok);
      const f2 = mine.value.files.find((f) => f.name.startsWith('one') && f.size === small.length);
      assert.ok(f2, JSON.stringify(mine.value.files));
      assert.equal(f2.sha256, sha256(small));
      assert.equal(sha256(readFileSync(f2.path)), sha256(small));
    });

    await t.test('subscribe/publish: the original on our broker, ours on the original broker', { timeout: 25_000 }, async () => {
      // The original subscriber: its pilotctl in the background until one event arrived; we publish until then
      // (it prints nothing before it has subscribed, so there is no readiness signal to wait for).
      const theirs = originalCtl(b, ['subscribe', String(ours.nodeId), 'conf-t1', '--count', '1', '--timeout', '15s'], 20_000);
      let isDone = false;
      void theirs.then(() => (isDone = true));
      const events: string[] = [];
      const sub = await c.subscribe(String(a.nodeId), 'conf-t2', (e) => events.push(e.data));
      assert.ok(sub.ok, sub.ok ? '' : sub.error.message);
      for (let i = 0; i < 60 && (!isDone || events.length === 0); i++) {
        if (!isDone) await originalOk(b, ['publish', String(ours.nodeId), 'conf-t1', '--data', 'through-our-broker']);
        if (events.length === 0) assert.ok((await c.publish(String(a.nodeId), 'conf-t2', 'through-the-original-broker')).ok);
        await sleep(250);
      }
      sub.value.close();
      const r = await theirs;
      assert.equal(r.doc?.status, 'ok', r.out);
      assert.equal(r.doc!.data.events?.[0]?.data, 'through-our-broker', r.out);
      assert.ok(events.length > 0, 'ours got an event from the original broker');
      assert.equal(events[0], 'through-the-original-broker');
    });

    await t.test('bench 10 MB: ours → original echo and original → our echo', { timeout: 40_000 }, async () => {
      const r = await c.bench(String(a.nodeId), 10 * 1024 * 1024);
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      assert.equal(r.value.bytes, 10 * 1024 * 1024);
      const o = await originalOk(b, ['bench', String(ours.nodeId), '10', '--timeout', '30s'], 35_000);
      assert.equal(o.recv_bytes, 10 * 1024 * 1024, JSON.stringify(o));
    });

    await t.test('relayed path: our --relay-only daemon ↔ the original through the beacon (ping, send-message both ways, 1 MB file)', { timeout: 30_000 }, async () => {
      const r = await cr.ping(String(a.nodeId), { count: 2, intervalMs: 200, timeoutMs: 20_000 });
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      assert.ok(r.value.results.some((x) => !x.error), JSON.stringify(r.value.results));
      const peers = await cr.peers();
      assert.ok(peers.ok);
      const p = peers.value.peers.find((x) => x.node_id === a.nodeId);
      assert.equal(p?.path, 'relay', JSON.stringify(peers.value.peers));
      assert.equal(p?.suite, 'legacy');
      const m = await cr.sendMessage(String(a.nodeId), 'via the beacon', 'text');
      assert.ok(m.ok, m.ok ? '' : m.error.message);
      await originalOk(a, ['send-message', String(relayNode.nodeId), '--data', 'back via the beacon'], 15_000);
      const inbox = await cr.inbox();
      assert.ok(inbox.ok && inbox.value.messages.some((x) => x.from === a.address && x.data === 'back via the beacon'), JSON.stringify(inbox));
      const theirs = await originalOk(a, ['inbox']);
      assert.ok((theirs.messages as { from: string; data: string }[]).some((x) => x.from === relayNode.address && x.data === 'via the beacon'));
      const file = randomBytes(1_000_000);
      const path = join(root, 'relayed.bin');
      writeFileSync(path, file);
      const s = await cr.sendFile(String(a.nodeId), path);
      assert.ok(s.ok, s.ok ? '' : s.error.message);
      const rec = await originalOk(a, ['received']);
      const f = (rec.files as { name: string; path: string; bytes: number }[]).find((x) => x.name.startsWith('relayed'));
      assert.ok(f, JSON.stringify(rec));
      assert.equal(sha256(readFileSync(f.path)), sha256(file));
    });

    await t.test(`our two daemons on ${rv === 'ours' ? 'our' : 'the original'} rendezvous meet over Noise only (never downgraded to v0.5)`, { timeout: 60_000 }, async () => {
      const h = await cr.handshake(String(ours.nodeId), 'two of ours');
      assert.ok(h.ok, h.ok ? '' : h.error.message);
      await waitFor('the request on ours', async () => {
        const p = await c.pending();
        return p.ok && p.value.pending.some((x) => x.node_id === relayNode.nodeId);
      }, 25_000, 50);
      assert.ok((await c.approve(relayNode.nodeId)).ok);
      await waitFor('mutual trust between ours', async () => {
        const tr = await cr.trusted();
        return tr.ok && tr.value.trusted.some((x) => x.node_id === ours.nodeId && x.mutual);
      }, 25_000, 50);
      const r = await cr.ping(String(ours.nodeId), { count: 2, intervalMs: 100, timeoutMs: 10_000 });
      assert.ok(r.ok && r.value.results.every((x) => !x.error), JSON.stringify(r.ok ? r.value.results : r.error));
      for (const [x, other] of [[cr, ours.nodeId], [c, relayNode.nodeId]] as const) {
        const peers = await x.peers();
        assert.ok(peers.ok);
        const mine = peers.value.peers.filter((p) => p.node_id === other);
        assert.ok(mine.length > 0 && mine.every((p) => p.suite === 'noise'), JSON.stringify(peers.value.peers));
      }
    });

    await t.test('the original pilotctl drives our daemon through --legacy-socket: info, trust, find, ping, connect, send-message, bench', { timeout: 30_000 }, async () => {
      const viaOurs: OriginalNode = { ...a, name: 'ours-relay (legacy IPC)', socket: legacySocket, home: join(root, 'ctl-home') };
      mkdirSync(viaOurs.home, { recursive: true });
      const info = await originalOk(viaOurs, ['info']);
      assert.equal(info.node_id, relayNode.nodeId);
      const tr = await originalOk(viaOurs, ['trust']);
      assert.ok((tr.trusted as { node_id: number }[]).some((x) => x.node_id === a.nodeId), JSON.stringify(tr));
      assert.equal((await originalOk(viaOurs, ['find', 'orig-a'])).node_id, a.nodeId);
      const ping = await originalOk(viaOurs, ['ping', String(a.nodeId), '--count', '2'], 20_000);
      assert.ok((ping.results as { error?: string }[]).some((x) => !x.error), JSON.stringify(ping));
      assert.equal((await originalOk(viaOurs, ['connect', String(a.nodeId), '7', '--message', 'legacy-ipc'], 15_000)).response, 'legacy-ipc');
      await originalOk(viaOurs, ['send-message', String(a.nodeId), '--data', 'sent by the original pilotctl via our daemon'], 15_000);
      const inbox = await originalOk(a, ['inbox']);
      assert.ok((inbox.messages as { from: string; data: string }[]).some((x) => x.from === relayNode.address && x.data === 'sent by the original pilotctl via our daemon'));
      const bench = await originalOk(viaOurs, ['bench', String(a.nodeId), '1'], 20_000);
      assert.equal(bench.recv_bytes, 1024 * 1024, JSON.stringify(bench));
    });

    // The same original pilotctl commands against an original daemon (orig-b, which trusts ours) and against our
    // daemon through --legacy-socket (ours-relay, which trusts orig-a): same status, and every field the
    // original's answer has is in ours (we add fields, never rename them). Each side targets a peer it trusts.
    await t.test('the original pilotctl catalogue answers through our --legacy-socket as through an original daemon', { timeout: 90_000 }, async () => {
      const viaOurs: OriginalNode = { ...a, name: 'ours-relay (legacy IPC)', socket: legacySocket, home: join(root, 'ctl-home-2') };
      mkdirSync(viaOurs.home, { recursive: true });
      const origHome: OriginalNode = { ...b, home: join(root, 'ctl-home-3') };
      mkdirSync(origHome.home, { recursive: true });
      const file = join(root, 'catalogue.bin');
      writeFileSync(file, Buffer.alloc(64 * 1024, 7));
      const commands: ((peer: number) => string[])[] = [
        () => ['info'],
        () => ['trust'],
        () => ['pending'],
        () => ['set-tags', 'conformance', 'interop'],
        () => ['set-hostname', `cat-${process.pid}-${Math.floor(Math.random() * 1e6)}`],
        () => ['clear-hostname'],
        (p) => ['ping', String(p), '--count', '1'],
        (p) => ['send', String(p), '7', '--data', 'catalogue'],
        (p) => ['connect', String(p), '7', '--message', 'catalogue'],
        (p) => ['send-message', String(p), '--data', 'catalogue', '--type', 'text'],
        (p) => ['send-file', String(p), file],
        (p) => ['publish', String(p), 'catalogue', '--data', 'x'],
        (p) => ['bench', String(p), '1'],
      ];
      const keys = (d: unknown): string[] => (d && typeof d === 'object' && !Array.isArray(d) ? Object.keys(d).sort() : []);
      const rows: string[] = [];
      for (const mk of commands) {
        const o = await originalCtl(origHome, mk(ours.nodeId), 30_000);
        const u = await originalCtl(viaOurs, mk(a.nodeId), 30_000);
        const name = mk(0)[0]!;
        rows.push(`${name}: original ${o.doc?.status ?? 'no json'}, ours ${u.doc?.status ?? 'no json'}`);
        assert.equal(u.doc?.status, o.doc?.status, `${name}: original said ${o.out.trim().slice(0, 300)}; ours said ${u.out.trim().slice(0, 300)}`);
        if (o.doc?.status === 'ok') {
          const missing = keys(o.doc.data).filter((k) => !keys(u.doc?.data).includes(k));
          assert.deepEqual(missing, [], `${name}: fields of the original missing from ours (${JSON.stringify(u.doc?.data).slice(0, 300)})`);
        }
      }
      t.diagnostic(rows.join('; '));
    });
  });
}
