// Same-run baselines, each endpoint in its own process like Pilot's: argv[2] is the kind —
//   tcp  node:net on loopback                     tls  node:tls 1.3 over TCP (argv[3] = dir with k.pem, c.pem)
// Written as their users write them: bulk tests leave Nagle on (256 KiB writes), latency tests set noDelay;
// TLS clients resume sessions (as https.Agent does), so a repeated dial is a resumed handshake and only the
// first is a full one — like Pilot, whose first dial makes the tunnel and later ones reuse it.
//   hp   udx-native + @hyperswarm/secret-stream   udp  raw node:dgram (datagram tests only)
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
} else {
  process.stderr.write(`baseline-worker: unknown kind ${kind}\n`);
  process.exit(2);
}
