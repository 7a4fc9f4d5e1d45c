// Serves the original pilotctl / driver binary protocol (./legacy-protocol.ts) over a NodeApi, so the original
// Go pilotctl and programs built on its `driver` package can drive our daemon. LegacyIpcSession is the
// transport-free per-client state machine (tests feed it bytes); serveLegacyIpc puts it on a Unix socket —
// by default the original's /tmp/pilot.sock, beside our JSON-lines socket.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import { err, ok, type Result } from '../core/result.js';
import { formatAddr, parseAddr, type VirtualAddr } from '../wire/address.js';
import type { DatagramSocket, NodeApi, PilotStream, PortListener } from '../node/api.js';
import {
  LEGACY_IPC_MAX_RECV_CHUNK,
  LegacyCmd,
  LegacyIpcFramer,
  decodeLegacyIpcRequest,
  encodeLegacyAccept,
  encodeLegacyBindOk,
  encodeLegacyCloseOk,
  encodeLegacyDialOk,
  encodeLegacyError,
  encodeLegacyJson,
  encodeLegacyRecv,
  encodeLegacyRecvFrom,
  frameLegacyIpc,
  type LegacyIpcRequest,
} from './legacy-protocol.js';

/** The original driver's default socket. */
export const LEGACY_IPC_DEFAULT_SOCKET = '/tmp/pilot.sock';

interface ConnEntry {
  stream: PilotStream;
  isClosedSent: boolean;
}

const unixSeconds = (iso: string): number => {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? Math.floor(t / 1000) : 0;
};

/**
 * One driver connection. `send` gets whole messages (without length prefix); `handle` takes one decoded
 * message. Connection ids are ours (u32, per daemon). Errors go back as the original's Error message.
 */
export class LegacyIpcSession {
  private readonly conns = new Map<number, ConnEntry>();
  private readonly listeners = new Map<number, PortListener>();
  private dgram: DatagramSocket | null = null;
  private isClosed = false;

  constructor(
    private readonly api: NodeApi,
    private readonly send: (msg: Uint8Array) => void,
    private readonly nextConnId: () => number,
    private readonly logger: Logger = silentLogger(),
  ) {}

  async handle(raw: Uint8Array): Promise<void> {
    const d = decodeLegacyIpcRequest(raw);
    if (!d.ok) return this.fail(d.error.message);
    try {
      await this.dispatch(d.value);
    } catch (e) {
      this.logger.error({ err: e }, 'legacy ipc handler threw');
      this.fail(`internal: ${(e as Error).message}`);
    }
  }

  private out(m: Uint8Array): void {
    if (!this.isClosed) this.send(m);
  }

  private fail(message: string): void {
    this.out(encodeLegacyError(message));
  }

  private json(cmd: number, v: unknown): void {
    this.out(encodeLegacyJson(cmd, v));
  }

  private async dispatch(r: LegacyIpcRequest): Promise<void> {
    const api = this.api;
    switch (r.cmd) {
      case 'bind': {
        const l = api.listen(r.port);
        if (!l.ok) return this.fail(l.error.message);
        this.listeners.set(r.port, l.value);
        this.out(encodeLegacyBindOk(r.port));
        void this.acceptLoop(r.port, l.value);
        return;
      }
      case 'dial': {
        const s = await api.dial(formatAddr(r.addr), r.port);
        if (!s.ok) return this.fail(s.error.message);
        const id = this.adopt(s.value);
        this.out(encodeLegacyDialOk(id));
        this.pump(id, s.value);
        return;
      }
      case 'send': {
        const c = this.conns.get(r.connId);
        if (!c || c.stream.destroyed || c.stream.writableEnded) return this.fail(`connection ${r.connId} not found`);
        c.stream.write(Buffer.from(r.data));
        return;
      }
      case 'close': {
        const c = this.conns.get(r.connId);
        if (c) c.stream.end(); // FIN after the queued data, as the original's CloseConnection
        this.closed(r.connId, true);
        return;
      }
      case 'send_to': {
        const sock = this.datagramSocket();
        if (!sock.ok) return this.fail(`sendto: ${sock.error.message}`);
        const s = await sock.value.send(formatAddr(r.addr), r.port, r.data);
        if (!s.ok) this.fail(`sendto: ${s.error.message}`);
        return;
      }
      case 'info':
        return this.info();
      case 'handshake':
        return this.handshake(r);
      case 'resolve_hostname': {
        const f = await api.find(r.hostname);
        if (!f.ok) return this.fail(`resolve_hostname: ${f.error.message}`);
        return this.json(LegacyCmd.ResolveHostnameOK, {
          type: 'resolve_hostname_ok',
          node_id: f.value.node_id,
          address: f.value.address,
          hostname: f.value.hostname ?? '',
          public: f.value.public,
        });
      }
      case 'set_hostname': {
        const res = r.hostname === '' ? await api.clearHostname() : await api.setHostname(r.hostname);
        if (!res.ok) return this.fail(`set_hostname: ${res.error.message}`);
        const info = await api.info();
        return this.json(LegacyCmd.SetHostnameOK, { type: 'set_hostname_ok', node_id: info.ok ? info.value.node_id : 0, hostname: r.hostname });
      }
      case 'set_visibility': {
        const res = await api.setVisibility(r.isPublic);
        if (!res.ok) return this.fail(`set_visibility: ${res.error.message}`);
        const info = await api.info();
        return this.json(LegacyCmd.SetVisibilityOK, {
          type: 'set_visibility_ok',
          node_id: info.ok ? info.value.node_id : 0,
          visibility: r.isPublic ? 'public' : 'private',
        });
      }
      case 'set_tags': {
        const res = await api.setTags(r.tags);
        if (!res.ok) return this.fail(`set_tags: ${res.error.message}`);
        const info = await api.info();
        return this.json(LegacyCmd.SetTagsOK, { type: 'set_tags_ok', node_id: info.ok ? info.value.node_id : 0, tags: r.tags.length > 0 ? r.tags : null });
      }
      // As the original's daemon: the registry's reply, {"type":"deregister_ok"} (issue 14 added NodeApi.deregister).
      case 'deregister': {
        const res = await api.deregister();
        if (!res.ok) return this.fail(`deregister: ${res.error.message}`);
        return this.json(LegacyCmd.DeregisterOK, { type: 'deregister_ok' });
      }
      // Not part of NodeApi: refused plainly rather than pretended.
      case 'set_webhook':
        return this.fail('set_webhook: webhooks are not supported by this daemon');
      case 'set_task_exec':
        return this.fail('set_task_exec: task execution is not supported by this daemon');
    }
  }

  private async handshake(r: Extract<LegacyIpcRequest, { cmd: 'handshake' }>): Promise<void> {
    const api = this.api;
    const ok = (v: unknown) => this.json(LegacyCmd.HandshakeOK, v);
    switch (r.sub) {
      case 'send': {
        const res = await api.handshake(String(r.nodeId), r.text);
        return res.ok ? ok({ status: 'sent', node_id: r.nodeId }) : this.fail(`handshake request: ${res.error.message}`);
      }
      case 'approve': {
        const res = await api.approve(r.nodeId);
        return res.ok ? ok({ status: 'approved', node_id: r.nodeId }) : this.fail(`handshake approve: ${res.error.message}`);
      }
      case 'reject': {
        const res = await api.reject(r.nodeId, r.text || undefined);
        return res.ok ? ok({ status: 'rejected', node_id: r.nodeId }) : this.fail(`handshake reject: ${res.error.message}`);
      }
      case 'revoke': {
        const res = await api.untrust(r.nodeId);
        return res.ok ? ok({ status: 'revoked', node_id: r.nodeId }) : this.fail(`handshake revoke: ${res.error.message}`);
      }
      case 'pending': {
        const res = await api.pending();
        if (!res.ok) return this.fail(`handshake pending: ${res.error.message}`);
        return ok({
          pending: res.value.pending.map((p) => ({ node_id: p.node_id, public_key: '', justification: p.justification, received_at: unixSeconds(p.received_at) })),
        });
      }
      case 'trusted': {
        const res = await api.trusted();
        if (!res.ok) return this.fail(`handshake trusted: ${res.error.message}`);
        return ok({
          trusted: res.value.trusted.map((t) => ({
            node_id: t.node_id,
            public_key: t.public_key ?? '',
            approved_at: unixSeconds(t.approved_at),
            mutual: t.mutual,
            network: 0,
          })),
        });
      }
    }
  }

  /** The original's InfoOK document (pkg/daemon/ipc.go handleInfo); fields it has and we lack are zero. */
  private async info(): Promise<void> {
    const [info, peers, conns] = await Promise.all([this.api.info(), this.api.peers(), this.api.connections()]);
    if (!info.ok) return this.fail(`info: ${info.error.message}`);
    const peerList = peers.ok ? peers.value.peers : [];
    const connList = conns.ok ? conns.value.connections : [];
    this.json(LegacyCmd.InfoOK, {
      node_id: info.value.node_id,
      address: info.value.address,
      hostname: info.value.hostname ?? '',
      uptime_secs: info.value.uptime_s,
      connections: info.value.connections,
      ports: this.listeners.size,
      peers: info.value.peers,
      encrypted_peers: peerList.filter((p) => p.encrypted).length,
      authenticated_peers: peerList.filter((p) => p.encrypted && p.trusted).length,
      encrypt: true,
      identity: true,
      public_key: info.value.public_key,
      owner: '',
      bytes_sent: connList.reduce((s, c) => s + c.bytes_sent, 0),
      bytes_recv: connList.reduce((s, c) => s + c.bytes_received, 0),
      pkts_sent: 0,
      pkts_recv: 0,
      peer_list: peerList.map((p) => ({ node_id: p.node_id, endpoint: p.endpoint ?? '', encrypted: p.encrypted, authenticated: p.encrypted })),
      conn_list: connList.map((c) => ({
        id: c.id,
        local_port: c.local_port,
        remote_addr: c.peer,
        remote_port: c.remote_port,
        state: c.state.toUpperCase(),
        cong_win: c.cwnd_bytes,
        ssthresh: 0,
        in_flight: c.bytes_in_flight,
        srtt_ms: c.srtt_ms,
        rttvar_ms: 0,
        unacked: 0,
        ooo_buf: 0,
        peer_recv_win: 0,
        recv_win: 0,
        in_recovery: false,
        bytes_sent: c.bytes_sent,
        bytes_recv: c.bytes_received,
        segs_sent: 0,
        segs_recv: 0,
        retransmits: c.retransmits,
        fast_retx: 0,
        sack_recv: 0,
        sack_sent: 0,
        dup_acks: 0,
      })),
    });
  }

  private adopt(stream: PilotStream): number {
    const id = this.nextConnId();
    this.conns.set(id, { stream, isClosedSent: false });
    return id;
  }

  private async acceptLoop(port: number, l: PortListener): Promise<void> {
    for (;;) {
      const s = await l.accept();
      if (s === null || this.isClosed) {
        s?.destroy();
        return;
      }
      const id = this.adopt(s);
      const remote = parseAddr(s.remoteAddr);
      const addr: VirtualAddr = remote.ok ? remote.value : { network: 0, node: s.remoteNodeId };
      this.out(encodeLegacyAccept(port, id, addr, s.remotePort));
      this.pump(id, s);
    }
  }

  /** Stream → Recv messages; its end → CloseOK (the original's startRecvPusher). */
  private pump(id: number, s: PilotStream): void {
    s.on('data', (chunk: Buffer) => {
      for (let off = 0; off < chunk.length; off += LEGACY_IPC_MAX_RECV_CHUNK) {
        this.out(encodeLegacyRecv(id, chunk.subarray(off, Math.min(chunk.length, off + LEGACY_IPC_MAX_RECV_CHUNK))));
      }
    });
    const done = () => this.closed(id, false);
    s.once('end', done);
    s.once('close', done);
    s.on('error', (e) => this.logger.debug({ err: e, conn: id }, 'legacy ipc stream error'));
  }

  private closed(id: number, isReply: boolean): void {
    const c = this.conns.get(id);
    if (c?.isClosedSent && !isReply) return;
    if (c) c.isClosedSent = true;
    this.out(encodeLegacyCloseOk(id));
    if (c && c.stream.readableEnded && (c.stream.writableEnded || c.stream.destroyed)) this.conns.delete(id);
  }

  private datagramSocket(): Result<DatagramSocket> {
    if (this.dgram) return ok(this.dgram);
    let last: Result<DatagramSocket> = err('internal', 'no free port');
    for (let i = 0; i < 16; i++) {
      last = this.api.openDatagramSocket(randomInt(49152, 65536));
      if (last.ok) break;
    }
    if (!last.ok) return last;
    const sock = last.value;
    this.dgram = sock;
    void (async () => {
      for (;;) {
        const d = await sock.recv();
        if (d === null || this.isClosed) return;
        const from = parseAddr(d.from);
        this.out(encodeLegacyRecvFrom(from.ok ? from.value : { network: 0, node: d.fromNodeId }, d.fromPort, d.port, d.data));
      }
    })();
    return ok(sock);
  }

  /** The client went away: drop its listeners, connections and socket (the original's handleClient cleanup). */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const l of this.listeners.values()) l.close();
    for (const c of this.conns.values()) if (!c.stream.destroyed) c.stream.destroy();
    this.dgram?.close();
    this.listeners.clear();
    this.conns.clear();
  }
}

export interface LegacyIpcServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

export interface LegacyIpcServerOptions {
  /** Default /tmp/pilot.sock (the original driver's default). */
  socketPath?: string;
  logger?: Logger;
}

/**
 * Listen on a Unix socket (0600) and serve the original binary protocol over `api` until close(). A stale socket
 * file nobody answers on is replaced; a live one → already_exists (an original daemon may own it).
 */
export async function serveLegacyIpc(api: NodeApi, opts: LegacyIpcServerOptions = {}): Promise<Result<LegacyIpcServer>> {
  const path = opts.socketPath ?? LEGACY_IPC_DEFAULT_SOCKET;
  const logger = opts.logger ?? silentLogger();
  const prepared = await removeStaleSocket(path);
  if (!prepared.ok) return prepared;
  let nextId = 1;
  const sessions = new Set<{ session: LegacyIpcSession; socket: Socket }>();
  const server: Server = createServer((socket) => {
    const framer = new LegacyIpcFramer();
    const session = new LegacyIpcSession(api, (m) => socket.write(frameLegacyIpc(m)), () => nextId++ >>> 0, logger);
    const entry = { session, socket };
    sessions.add(entry);
    let chain = Promise.resolve();
    socket.on('data', (chunk) => {
      const msgs = framer.push(chunk);
      if (!msgs.ok) {
        logger.debug({ err: msgs.error }, 'legacy ipc: bad frame, dropping client');
        socket.destroy();
        return;
      }
      // One message at a time, in order, like the original's per-client loop.
      for (const m of msgs.value) chain = chain.then(() => session.handle(m));
    });
    const end = () => {
      session.close();
      sessions.delete(entry);
    };
    socket.on('close', end);
    socket.on('error', () => socket.destroy());
  });
  const listening = await new Promise<Result<void>>((resolve) => {
    server.once('error', (e: NodeJS.ErrnoException) => resolve(err('internal', `cannot listen on ${path}: ${e.message}`, { cause: e })));
    server.listen(path, () => resolve(ok()));
  });
  if (!listening.ok) return listening;
  try {
    chmodSync(path, 0o600);
  } catch (e) {
    server.close();
    return err('internal', `cannot chmod ${path}: ${(e as Error).message}`, { cause: e });
  }
  return ok({
    socketPath: path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) {
          s.session.close();
          s.socket.destroy();
        }
        server.close(() => resolve());
      }),
  });
}

async function removeStaleSocket(path: string): Promise<Result<void>> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return ok();
  }
  if (!isSocket) return err('already_exists', `${path} exists and is not a socket`);
  const isLive = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (isLive) return err('already_exists', `something already listens on ${path} (an original daemon?)`, { hint: 'stop it, or pass another legacy socket path' });
  try {
    unlinkSync(path);
  } catch (e) {
    return err('internal', `cannot remove stale socket ${path}: ${(e as Error).message}`, { cause: e });
  }
  return ok();
}
