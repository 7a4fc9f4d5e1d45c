// Test-only stand-ins for the daemon's compat tests: a tiny TLS port (ALPN pilot-registry → an echo; else HTTP
// with a `ws` upgrade on COMPAT_WS_PATH that answers discovers and reflects relay frames), an HTTP CONNECT proxy
// with Basic auth, and a TCP forwarder that can be cut or turned into a black hole. Not a rendezvous: the real
// one is src/registry (test/integration/compat.test.ts runs it).
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import selfsigned from 'selfsigned';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  COMPAT_ALPN_REGISTRY,
  COMPAT_WS_PATH,
  COMPAT_WS_SUBPROTOCOL,
  MAX_WS_MESSAGE_BYTES,
  decodeRecords,
  encodeRecords,
} from '../../../src/wire/compat-frames.js';
import { BEACON_DISCOVER, BEACON_RELAY, encodeBeaconMessage, writeRelayDeliver } from '../../../src/wire/beacon-message.js';

let cached: { key: string; cert: string; fingerprint: string } | null = null;
/** One self-signed RSA certificate per test process (key generation is slow). */
export function testCert(): { key: string; cert: string; fingerprint: string } {
  if (!cached) {
    const r = selfsigned.generate([{ name: 'commonName', value: 'pilot-rendezvous' }], { days: 2, keySize: 2048 });
    cached = { key: r.private, cert: r.cert, fingerprint: new X509Certificate(r.cert).fingerprint256 };
  }
  return cached;
}

export interface FakeCompat {
  port: number;
  fingerprint: string;
  channels: Set<WebSocket>;
  /** Datagrams received over channels, in order. */
  received: Uint8Array[];
  /** Discovers seen (node ids). */
  discovers: number[];
  /** Don't answer discovers (the link stays 'open', not 'registered'). */
  isSilent: boolean;
  close(): Promise<void>;
}

/** The fake compat port. Relay frames (0x05) are reflected to the sender as relay_deliver from their dest id. */
export async function startFakeCompat(): Promise<FakeCompat> {
  const { key, cert, fingerprint } = testCert();
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_MESSAGE_BYTES, perMessageDeflate: false, handleProtocols: (p) => (p.has(COMPAT_WS_SUBPROTOCOL) ? COMPAT_WS_SUBPROTOCOL : false) });
  const http = createHttpServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"not_found"}');
  });
  const sockets = new Set<Socket>();
  const fake: FakeCompat = {
    port: 0,
    fingerprint,
    channels: new Set(),
    received: [],
    discovers: [],
    isSilent: false,
    close: async () => {
      for (const c of fake.channels) c.terminate();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => tls.close(() => r()));
    },
  };
  http.on('upgrade', (req, socket, head) => {
    if (req.url !== COMPAT_WS_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      fake.channels.add(ws);
      ws.on('close', () => fake.channels.delete(ws));
      ws.on('message', (data: Buffer, isBinary) => {
        const recs = isBinary ? decodeRecords(data) : null;
        if (!recs || !recs.ok) return ws.close(1007, 'not whole records');
        const out: Uint8Array[] = [];
        for (const d of recs.value) {
          fake.received.push(Uint8Array.from(d));
          if (d[0] === BEACON_DISCOVER) {
            fake.discovers.push(Buffer.from(d).readUInt32BE(1));
            if (fake.isSilent) continue;
            const r = encodeBeaconMessage({ kind: 'discover_reply', ip: '127.0.0.1', port: 0 });
            if (r.ok) out.push(r.value);
          } else if (d[0] === BEACON_RELAY) {
            const dest = Buffer.from(d).readUInt32BE(5);
            const payload = d.subarray(9);
            const buf = new Uint8Array(5 + payload.length);
            writeRelayDeliver(buf, dest, payload);
            out.push(buf);
          }
        }
        if (out.length > 0) {
          const m = encodeRecords(out);
          if (m.ok) ws.send(m.value);
        }
      });
    });
  });
  const tls = createTlsServer({ key, cert, ALPNProtocols: [COMPAT_ALPN_REGISTRY, 'http/1.1'] }, (s: TLSSocket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    if (s.alpnProtocol === COMPAT_ALPN_REGISTRY) s.pipe(s);
    else http.emit('connection', s);
  });
  tls.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => tls.listen(0, '127.0.0.1', () => r()));
  fake.port = (tls.address() as { port: number }).port;
  return fake;
}

export interface FakeProxy {
  port: number;
  /** Proxy-Authorization headers seen. */
  auths: (string | null)[];
  close(): Promise<void>;
}

/** An HTTP CONNECT proxy: 407 without `Basic base64(user:pass)`, 403 for a target other than 127.0.0.1. */
export async function startFakeProxy(user: string, pass: string): Promise<FakeProxy> {
  const want = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  const sockets = new Set<Socket>();
  const p: FakeProxy = { port: 0, auths: [], close: async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
  } };
  const srv: Server = createNetServer((c) => {
    sockets.add(c);
    c.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    const onData = (b: Buffer): void => {
      buf = Buffer.concat([buf, b]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      c.off('data', onData);
      const head = buf.subarray(0, end).toString('latin1').split('\r\n');
      const auth = head.find((l) => /^proxy-authorization:/i.test(l))?.replace(/^[^:]*:\s*/, '') ?? null;
      p.auths.push(auth);
      const m = /^CONNECT ([^ ]+):(\d+) HTTP\/1\.1$/.exec(head[0]!);
      if (auth !== want) return void c.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="t"\r\n\r\n');
      if (!m || m[1] !== '127.0.0.1') return void c.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      const up = netConnect({ host: m[1], port: Number(m[2]) }, () => {
        c.write('HTTP/1.1 200 Connection established\r\n\r\n');
        const rest = buf.subarray(end + 4);
        if (rest.length) up.write(rest);
        c.pipe(up).pipe(c);
      });
      sockets.add(up);
      up.on('error', () => c.destroy());
    };
    c.on('data', onData);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  p.port = (srv.address() as { port: number }).port;
  return p;
}

export interface Forwarder {
  port: number;
  /** Destroy every forwarded connection (both sides see a reset/close at once). */
  cut(): void;
  /** Stop forwarding bytes on the open connections without closing them (a half-open path); new ones work. */
  blackhole(): void;
  /** Connections accepted so far. */
  accepted: number;
  close(): Promise<void>;
}

/** A TCP forwarder 127.0.0.1:<port> → 127.0.0.1:`targetPort`. */
export async function startForwarder(targetPort: number): Promise<Forwarder> {
  const pairs = new Set<[Socket, Socket]>();
  const holes = new WeakSet<Socket>();
  const f: Forwarder = {
    port: 0,
    accepted: 0,
    cut: () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    blackhole: () => {
      for (const [a, b] of pairs) {
        holes.add(a);
        holes.add(b);
      }
    },
    close: async () => {
      f.cut();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
  const srv = createNetServer((c) => {
    f.accepted++;
    const up = netConnect({ host: '127.0.0.1', port: targetPort });
    const pair: [Socket, Socket] = [c, up];
    pairs.add(pair);
    const drop = (): void => {
      c.destroy();
      up.destroy();
      pairs.delete(pair);
    };
    for (const [from, to] of [[c, up], [up, c]] as const) {
      from.on('data', (b) => {
        if (!holes.has(from)) to.write(b);
      });
      from.on('error', drop);
      from.on('close', drop);
    }
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  f.port = (srv.address() as { port: number }).port;
  return f;
}
