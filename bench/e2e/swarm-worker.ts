// 10,000 idle peers for the daemon RSS figure: one process plays every peer, doing a real Noise IK handshake
// (src/crypto) per peer id against the daemon's tunnel socket, then stays silent. The daemon trusts them
// through a trust.json the orchestrator wrote before starting it (swarmIdentity(i) on both sides), so no
// registry traffic is involved: what grows is the daemon's per-peer session state.
// So many initiations put the daemon under load: it answers with cookie replies (src/crypto/cookie.ts) and
// rate-limits each source, so the peers spread over SOCKETS source ports and retry with mac2 at once.
import dgram from 'node:dgram';
import { createInitiator, type Identity, type NoiseInitiation, type NoiseSession } from '../../src/crypto/index.js';
import type { DataCipherSupport } from '../../src/crypto/data-cipher.js';
import { createJsAead } from '../../src/datapath/aead.js';

const SWARM_CIPHERS: DataCipherSupport = { ciphers: ['aes-256-gcm'], create: (c, key) => createJsAead(c, key) };
import { decodeNoiseResponse, noiseFrameKind, readU32LE } from '../../src/wire/noise-frame.js';
import { serveRpc, monoUs } from './rpc.js';
import { SWARM_NODE_ID_BASE, swarmIdentity } from './swarm-identity.js';

const SOCKETS = 64;
const WINDOW = 256;
const RETRY_MS = 1000;
const KEEPALIVE_BYTE = 0x10;

interface Peer {
  i: number;
  identity: Identity;
  initiation: NoiseInitiation | null;
  session: NoiseSession | null;
  sentAtMs: number;
  tries: number;
}

async function connectAll(a: Record<string, unknown>): Promise<unknown> {
  const count = Number(a.count);
  const ip = String(a.ip);
  const port = Number(a.port);
  const daemonKey = new Uint8Array(Buffer.from(String(a.publicKey), 'base64'));
  const daemonNodeId = Number(a.nodeId);
  const t0 = Date.now();
  const peers: Peer[] = [];
  for (let i = 0; i < count; i++) peers.push({ i, identity: swarmIdentity(i), initiation: null, session: null, sentAtMs: 0, tries: 0 });
  const byIndex = new Map<number, Peer>();
  const sockets: dgram.Socket[] = [];
  const cookies: (Uint8Array | null)[] = new Array(SOCKETS).fill(null);
  let send: (p: Peer) => void;
  let done = 0;
  let wake: (() => void) | null = null;
  const sealBuf = new Uint8Array(256);
  let lastTs = 0;

  for (let k = 0; k < SOCKETS; k++) {
    const s = dgram.createSocket('udp4');
    const socketNo = k;
    s.on('message', (m) => {
      if (noiseFrameKind(m) === 'cookie') {
        const idx = readU32LE(m, 4);
        const p = byIndex.get(idx);
        const c = p?.initiation?.handleCookieReply(m);
        if (!p || !c?.ok) return;
        cookies[socketNo] = c.value;
        byIndex.delete(idx);
        send(p);
        return;
      }
      if (noiseFrameKind(m) !== 'response') return;
      const f = decodeNoiseResponse(m);
      if (!f.ok) return;
      const p = byIndex.get(f.value.receiverIndex);
      if (!p?.initiation) return;
      const r = p.initiation.handleResponse(m, monoUs());
      if (!r.ok) return;
      p.initiation = null;
      p.session = r.value.session;
      byIndex.delete(f.value.receiverIndex);
      done++;
      // Key confirmation, as peers/noise-suite.ts does after a response.
      const ka = p.session.seal(new Uint8Array([KEEPALIVE_BYTE]), monoUs(), sealBuf);
      if (ka.ok) s.send(ka.value, port, ip);
      wake?.();
    });
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    sockets.push(s);
  }

  let nextIndex = 1;
  send = (p: Peer): void => {
    const ts = Math.max(Date.now() / 1000, lastTs + 0.001);
    lastTs = ts;
    const localIndex = nextIndex++;
    const init = createInitiator({
      local: p.identity,
      localNodeId: SWARM_NODE_ID_BASE + p.i,
      localIndex,
      remoteStatic: daemonKey,
      remoteNodeId: daemonNodeId,
      timestampS: ts,
      now: monoUs(),
      cookie: cookies[p.i % SOCKETS]!,
      // Offer AES-256-GCM as a new peer with hardware AES does: the daemon's idle sessions are then the kind it
      // holds for such peers (their JS-side AEADs are made on first use, so idle ones cost nothing extra).
      dataCiphers: SWARM_CIPHERS,
    });
    if (!init.ok) throw new Error(init.error.message);
    p.initiation = init.value.state;
    p.sentAtMs = Date.now();
    p.tries++;
    byIndex.set(localIndex, p);
    sockets[p.i % SOCKETS]!.send(init.value.message, port, ip);
  };

  let next = 0;
  const deadline = Date.now() + Number(a.timeoutMs ?? 120_000);
  while (done < count && Date.now() < deadline) {
    const inFlight = byIndex.size;
    for (let k = inFlight; k < WINDOW && next < count; k++) send(peers[next++]!);
    const now = Date.now();
    for (const [idx, p] of byIndex) {
      if (now - p.sentAtMs > RETRY_MS) {
        byIndex.delete(idx);
        send(p);
      }
    }
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, 20);
    });
    wake = null;
  }
  const retries = peers.reduce((s, p) => s + Math.max(0, p.tries - 1), 0);
  // Keep sockets and sessions alive (idle) until exit: the peers stay "up" from the daemon's view.
  return { connected: done, retries, ms: Date.now() - t0 };
}

serveRpc({ connectAll });
