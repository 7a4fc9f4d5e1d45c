// A Pilot endpoint in its own process, driven by the orchestrator over RPC. Two modes:
//   local — the node itself lives here (createNode): measures the tunnel + transport + datapath with no IPC hop;
//   ipc   — a PilotClient talking to a separate pilot-daemon over its Unix socket: what pilotctl users get.
// argv[2] is a JSON WorkerConfig. PILOT_NATIVE=0 in the environment selects the node:dgram datapath (local mode;
// in ipc mode it must be set on the daemon).
import type { NodeApi, DatagramSocket, PortListener, PilotStream } from '../../src/node/api.js';
import type { Result } from '../../src/core/result.js';
import { PilotClient } from '../../src/sdk/client.js';
import { serveRpc } from './rpc.js';
import { testHandlers, type ByteStream, type DgramSide, type StreamSide } from './tests.js';

export interface WorkerConfig {
  mode: 'local' | 'ipc';
  home: string;
  registry?: string;
  beacon?: string;
  hostname?: string;
  /** Path MTU discovery (default off here: the target rows measure 1452-byte datagrams). */
  pmtud?: boolean;
}

interface PilotTarget {
  peer: number;
  port: number;
}

const STREAM_PORT_BASE = 5000;
const DGRAM_PORT_BASE = 6000;

function unwrap<T>(r: Result<T>, what: string): T {
  if (!r.ok) throw new Error(`${what}: ${r.error.code}: ${r.error.message}`);
  return r.value;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as WorkerConfig;
  let api: NodeApi;
  let client: PilotClient | null = null;
  if (cfg.mode === 'local') {
    // Only here: an SDK process (ipc mode) loads what a PilotClient app loads, not the node stack (src/sdk/index.ts).
    const { createNode } = await import('../../src/sdk/local-node.js');
    api = unwrap(
      await createNode({
        home: cfg.home,
        registry: cfg.registry!,
        beacon: cfg.beacon!,
        hostname: cfg.hostname ?? null,
        listen: '127.0.0.1:0',
        trustAutoApprove: true,
        pmtud: cfg.pmtud === true,
      }),
      'createNode',
    );
  } else {
    client = unwrap(await PilotClient.connect({ home: cfg.home }), 'PilotClient.connect');
    api = client;
  }
  const me = unwrap(await api.info(), 'info');

  const streamPorts = new Map<string, number>();
  const dgramPorts = new Map<string, number>();
  const listeners = new Map<string, PortListener>();
  const sockets = new Set<DatagramSocket>();
  let nextClientDgramPort = DGRAM_PORT_BASE + 500;
  const portOf = (m: Map<string, number>, base: number, test: string): number => {
    let p = m.get(test);
    if (p === undefined) {
      p = base + m.size + 1;
      m.set(test, p);
    }
    return p;
  };

  const listen = async (port: number): Promise<PortListener> =>
    client ? unwrap(await client.listenAsync(port), `listen ${port}`) : unwrap(api.listen(port), `listen ${port}`);
  const openDgram = async (port: number): Promise<DatagramSocket> =>
    client ? unwrap(await client.openDatagramSocketAsync(port), `datagram ${port}`) : unwrap(api.openDatagramSocket(port), `datagram ${port}`);

  const streams: StreamSide = {
    async serve(test, count, onStream) {
      const port = portOf(streamPorts, STREAM_PORT_BASE, test);
      if (!listeners.has(test)) {
        const l = await listen(port);
        listeners.set(test, l);
        void (async () => {
          for (;;) {
            const s: PilotStream | null = await l.accept();
            if (!s) return;
            onStream(s as unknown as ByteStream);
          }
        })();
      }
      return Array.from({ length: count }, (): PilotTarget => ({ peer: me.node_id, port }));
    },
    async dial(target) {
      const t = target as PilotTarget;
      return unwrap(await api.dial(String(t.peer), t.port), `dial ${t.peer}:${t.port}`) as unknown as ByteStream;
    },
  };

  const pump = (sock: DatagramSocket, fn: (d: { data: Uint8Array; fromNodeId: number; fromPort: number }) => void): void => {
    void (async () => {
      for (;;) {
        const d = await sock.recv();
        if (!d) return;
        fn(d);
      }
    })();
  };
  const dgrams: DgramSide = {
    async open(test, onMessage) {
      const port = portOf(dgramPorts, DGRAM_PORT_BASE, test);
      const sock = await openDgram(port);
      sockets.add(sock);
      pump(sock, (d) => onMessage(d.data, (x) => void sock.send(String(d.fromNodeId), d.fromPort, x)));
      return { peer: me.node_id, port } satisfies PilotTarget;
    },
    async connect(target, onMessage) {
      const t = target as PilotTarget;
      const sock = await openDgram(nextClientDgramPort++);
      sockets.add(sock);
      pump(sock, (d) => onMessage(d.data));
      const peer = String(t.peer);
      return {
        send: (data) => sock.send(peer, t.port, data),
        close: () => {
          sock.close();
          sockets.delete(sock);
        },
      };
    },
  };

  serveRpc({
    ...testHandlers(streams, dgrams),
    info: () => me,
    /** Where datagrams were dropped: the node's counters (the daemon's, via IPC) and this process's socket queues. */
    async datagramCounters() {
      const i = await api.info();
      let socketDrops = 0;
      for (const s of sockets) socketDrops += s.dropped;
      return { node: i.ok ? (i.value.datagrams ?? null) : null, socketDrops, viaDaemon: client !== null };
    },
    async trust(a) {
      return unwrap(await api.handshake(String(a.peer), 'e2e bench'), 'handshake');
    },
    async waitTrusted(a) {
      const deadline = Date.now() + Number(a.timeoutMs ?? 20_000);
      while (Date.now() < deadline) {
        const t = unwrap(await api.trusted(), 'trusted');
        if (t.trusted.some((x) => x.node_id === Number(a.peer) && x.mutual)) return true;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no mutual trust with ${String(a.peer)}`);
    },
    /** process.memoryUsage() after a full GC when started with --expose-gc (live memory, not garbage). */
    memory() {
      const g = (globalThis as { gc?: () => void }).gc;
      if (g) for (let i = 0; i < 3; i++) g();
      return { ...process.memoryUsage(), isAfterGc: g !== undefined };
    },
    /** Transport state of every connection (cwnd, srtt, in flight, retransmits): is a stream window-bound? */
    async connections() {
      return unwrap(await api.connections(), 'connections').connections;
    },
    /** The peers table (`pilotctl peers`): path, cipher, path MTU. */
    async peers() {
      return unwrap(await api.peers(), 'peers').peers;
    },
    /** `pilotctl ping` semantics: the echo service, one dial per probe. */
    async servicePing(a) {
      const r = unwrap(await api.ping(String(a.peer), { count: Number(a.count), intervalMs: 0, size: 64, timeoutMs: 120_000 }), 'ping');
      return r.results.filter((x) => !x.error).map((x) => Math.round(x.rtt_ms * 1000));
    },
    async exit() {
      for (const s of sockets) s.close();
      for (const l of listeners.values()) l.close();
      if (client) client.close();
      else await api.shutdown();
    },
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`pilot-worker: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
