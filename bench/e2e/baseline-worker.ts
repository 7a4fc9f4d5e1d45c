// Same-run baselines, each endpoint in its own process like Pilot's: argv[2] is the kind —
//   tcp  node:net on loopback                     tls  node:tls 1.3 over TCP (argv[3] = dir with k.pem, c.pem)
// Written as their users write them: bulk tests leave Nagle on (256 KiB writes), latency tests set noDelay;
// TLS clients resume sessions (as https.Agent does), so a repeated dial is a resumed handshake and only the
// first is a full one — like Pilot, whose first dial makes the tunnel and later ones reuse it.
//   hp   udx-native + @hyperswarm/secret-stream   udp  raw node:dgram (datagram tests only)
//   chain  the daemon path's topology with no Pilot code, a floor rather than a rival: the client dials a relay
//        process over a Unix socket, that relay pipes over loopback TCP to a second relay, which pipes over a
//        Unix socket to the server (argv[3] = a directory for the sockets; the client's argv[4] = the first
//        relay's socket). Four processes and three kernel hops, as SDK → daemon → daemon → SDK; no crypto, no
//        transport, no framing. `relay` (argv[3] a or b) is one relay, written as a user writes a relay: pipe().
// Ideas from ../shared/baselines/{tcp,tls,hp,tx,rx}.js, re-shaped to the common loops in tests.ts.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import dgram from 'node:dgram';
import { serveRpc } from './rpc.js';
import { isBulkTest, testHandlers, type ByteStream, type DgramSide, type StreamSide } from './tests.js';

const LO = '127.0.0.1';
const require = createRequire(import.meta.url);

function tcpSide(): StreamSide {
  const servers = new Map<string, { port: number; noDelay: boolean }>();
  return {
    async serve(test, count, onStream) {
      let s = servers.get(test);
      if (!s) {
        const noDelay = !isBulkTest(test);
        const srv = net.createServer({ noDelay }, (c) => onStream(c as unknown as ByteStream));
        await new Promise<void>((r) => srv.listen(0, LO, r));
        s = { port: (srv.address() as net.AddressInfo).port, noDelay };
        servers.set(test, s);
      }
      return Array.from({ length: count }, () => s);
    },
    dial(target) {
      const { port, noDelay } = target as { port: number; noDelay: boolean };
      return new Promise((resolve, reject) => {
        const c = net.connect({ port, host: LO, noDelay }, () => resolve(c as unknown as ByteStream));
        c.once('error', reject);
      });
    },
  };
}

function tlsSide(certDir: string): StreamSide {
  const key = readFileSync(join(certDir, 'k.pem'));
  const cert = readFileSync(join(certDir, 'c.pem'));
  const servers = new Map<string, { port: number; noDelay: boolean }>();
  const sessions = new Map<number, Buffer>();
  return {
    async serve(test, count, onStream) {
      let s = servers.get(test);
      if (!s) {
        const noDelay = !isBulkTest(test);
        const srv = tls.createServer({ key, cert, minVersion: 'TLSv1.3' }, (c) => {
          c.setNoDelay(noDelay);
          onStream(c as unknown as ByteStream);
        });
        await new Promise<void>((r) => srv.listen(0, LO, r));
        s = { port: (srv.address() as net.AddressInfo).port, noDelay };
        servers.set(test, s);
      }
      return Array.from({ length: count }, () => s);
    },
    dial(target) {
      const { port, noDelay } = target as { port: number; noDelay: boolean };
      return new Promise((resolve, reject) => {
        const session = sessions.get(port);
        const c = tls.connect({ port, host: LO, rejectUnauthorized: false, minVersion: 'TLSv1.3', ...(session ? { session } : {}) }, () => {
          c.setNoDelay(noDelay);
          resolve(c as unknown as ByteStream);
        });
        c.on('session', (sess: Buffer) => sessions.set(port, sess));
        c.once('error', reject);
      });
    },
  };
}

// udx-native and secret-stream ship no types; the little we use:
interface UdxSocket {
  bind(port: number, host: string): void;
  address(): { port: number };
  close(): Promise<void>;
}
interface UdxStream {
  connect(socket: UdxSocket, remoteId: number, port: number, host: string): void;
}
interface Udx {
  createSocket(): UdxSocket;
  createStream(id: number): UdxStream;
}

/**
 * udx streams have no listen/accept: both ends are created with agreed ids (hyperdht agrees on them during
 * hole punching). `serve` creates the server ends up front, before any timing; the client id is server id + 1e6.
 */
function hpSide(): StreamSide & { port: number; setPeer(port: number): void } {
  const UDX = require('udx-native') as new () => Udx;
  const SecretStream = require('@hyperswarm/secret-stream') as new (isInitiator: boolean, raw: UdxStream) => ByteStream;
  const udx = new UDX();
  const socket = udx.createSocket();
  socket.bind(0, LO);
  let peerPort = 0;
  let nextId = 1;
  return {
    port: socket.address().port,
    setPeer(port) {
      peerPort = port;
    },
    async serve(_test, count, onStream) {
      const targets: unknown[] = [];
      for (let i = 0; i < count; i++) {
        const id = nextId++;
        const raw = udx.createStream(id);
        raw.connect(socket, id + 1_000_000, peerPort, LO);
        onStream(new SecretStream(false, raw));
        targets.push({ id });
      }
      return targets;
    },
    dial(target) {
      const { id } = target as { id: number };
      const raw = udx.createStream(id + 1_000_000);
      raw.connect(socket, id, peerPort, LO);
      const s = new SecretStream(true, raw);
      return new Promise((resolve, reject) => {
        s.once('error', reject as () => void);
        (s as unknown as { once(ev: 'connect', fn: () => void): void }).once('connect', () => resolve(s));
      });
    },
  };
}

function udpSide(): DgramSide {
  const bind = async (onMessage: (m: Buffer, r: dgram.RemoteInfo) => void): Promise<dgram.Socket> => {
    const s = dgram.createSocket('udp4');
    s.on('message', onMessage);
    await new Promise<void>((r) => s.bind(0, LO, r));
    try {
      s.setRecvBufferSize(8 << 20);
      s.setSendBufferSize(8 << 20);
    } catch {
      /* capped by net.core.rmem_max */
    }
    return s;
  };
  return {
    async open(_test, onMessage) {
      const s = await bind((m, r) => onMessage(m, (d) => s.send(d, r.port, r.address)));
      return { port: s.address().port };
    },
    async connect(target, onMessage) {
      const { port } = target as { port: number };
      const s = await bind((m) => onMessage(m));
      return { send: (d) => s.send(d, port, LO), close: () => s.close() };
    },
  };
}

/** chain: servers on Unix sockets in `dir`; a dial goes through `relayA` and names its server in a first line. */
function chainSide(dir: string, relayA: string | null): StreamSide {
  const servers = new Map<string, string>();
  return {
    async serve(test, count, onStream) {
      let path = servers.get(test);
      if (!path) {
        path = join(dir, `srv-${test}.sock`);
        const srv = net.createServer({ allowHalfOpen: true }, (c) => onStream(c as unknown as ByteStream));
        await new Promise<void>((r) => srv.listen(path, r));
        servers.set(test, path);
      }
      return Array.from({ length: count }, () => ({ path }));
    },
    dial(target) {
      const { path } = target as { path: string };
      if (relayA === null) return Promise.reject(new Error('chain: this worker has no relay to dial through'));
      return new Promise((resolve, reject) => {
        const c = net.connect({ path: relayA, allowHalfOpen: true }, () => {
          c.write(`${path}\n`);
          resolve(c as unknown as ByteStream);
        });
        c.once('error', reject);
      });
    },
  };
}

/** Pipe two sockets both ways; FIN travels (allowHalfOpen), an error on either closes both. */
function splice(x: net.Socket, y: net.Socket): void {
  x.pipe(y);
  y.pipe(x);
  const kill = (): void => {
    x.destroy();
    y.destroy();
  };
  x.once('error', kill);
  y.once('error', kill);
}

/** Relay a: Unix socket in → TCP to relay b. Relay b: TCP in → the Unix socket named by the stream's first line. */
function relayHandlers(role: string, dir: string): Record<string, (a: Record<string, unknown>) => unknown> {
  return {
    async listen(a) {
      if (role === 'a') {
        const path = join(dir, 'relay-a.sock');
        const port = Number(a.port);
        const srv = net.createServer({ allowHalfOpen: true }, (c) => {
          const up = net.connect({ port, host: LO, allowHalfOpen: true, noDelay: true });
          splice(c, up);
        });
        await new Promise<void>((r) => srv.listen(path, r));
        return { path };
      }
      const srv = net.createServer({ allowHalfOpen: true, noDelay: true }, (c) => {
        let head = Buffer.alloc(0);
        const onHead = (b: Buffer): void => {
          head = Buffer.concat([head, b]);
          const nl = head.indexOf(10);
          if (nl < 0) return;
          c.off('data', onHead);
          c.pause();
          const down = net.connect({ path: head.subarray(0, nl).toString(), allowHalfOpen: true }, () => {
            if (nl + 1 < head.length) down.write(head.subarray(nl + 1));
            splice(c, down);
            c.resume();
          });
          down.once('error', () => c.destroy());
        };
        c.on('data', onHead);
      });
      await new Promise<void>((r) => srv.listen(0, LO, r));
      return { port: (srv.address() as net.AddressInfo).port };
    },
  };
}

const kind = process.argv[2];
if (kind === 'hp') {
  const hp = hpSide();
  serveRpc({ ...testHandlers(hp, null), hpPort: () => hp.port, hpPeer: (a) => void hp.setPeer(Number(a.port)) });
} else if (kind === 'tcp') {
  serveRpc(testHandlers(tcpSide(), null));
} else if (kind === 'tls') {
  serveRpc(testHandlers(tlsSide(process.argv[3]!), null));
} else if (kind === 'udp') {
  serveRpc(testHandlers(null, udpSide()));
} else if (kind === 'chain') {
  serveRpc(testHandlers(chainSide(process.argv[3]!, process.argv[4] ?? null), null));
} else if (kind === 'relay') {
  serveRpc(relayHandlers(process.argv[3]!, process.argv[4]!));
} else {
  process.stderr.write(`baseline-worker: unknown kind ${kind}\n`);
  process.exit(2);
}
