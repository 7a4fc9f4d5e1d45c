// Conformance against original v0.5 binaries (never built or shipped here), found under
// ../shared/interop/original-*/ beside the project root, or named by environment variables (which win):
//   PILOT_INTEROP_RENDEZVOUS  original `rendezvous`  → our wire codecs and signatures against its registry + beacon
//   PILOT_INTEROP_DAEMON      original `daemon`      → it registers, heartbeats and resolves through OUR rendezvous
//   PILOT_INTEROP_PILOTCTL    original `pilotctl`    → it drives our legacy IPC server (src/ipc/legacy-server.ts)
// Without any of them this file reports one skipped test with one line saying where it looked.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { accessSync, constants, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { challenge, encodeRegistryFrame, RegistryFrameDecoder, type RegistryMessage } from '../../src/wire/registry-frame.js';
import { decodeBeaconMessage, encodeBeaconMessage } from '../../src/wire/beacon-message.js';
import { generateIdentity, identityToJson, sign, toBase64, type Identity } from '../../src/crypto/identity.js';
import { serveLegacyIpc } from '../../src/ipc/legacy-server.js';
import { binCommand } from '../helpers/bins.js';
import { FakeNode } from '../unit/ipc/fake-node.js';

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
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

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
    const ours = start([...binCommand('pilot-rendezvous'), '--registry-addr', '127.0.0.1:0', '--beacon-addr', '127.0.0.1:0']);
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
    start([DAEMON!, '-registry', addrs.registry, '-beacon', addrs.beacon, '-listen', '127.0.0.1:0', '-socket', sock, '-identity', join(dir, 'identity.json'), '-hostname', 'orig-conf']);
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
      const out = await run(PILOTCTL, ['--json', 'info'], { PILOT_SOCKET: sock });
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
    const env = { PILOT_SOCKET: srv.value.socketPath };
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
