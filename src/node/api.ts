// The contract between the daemon (src/node) and everything above it: ipc/ (which serves it to pilotctl),
// sdk/ (in-process node) and services/. Types only; the daemon implements NodeApi.
import type { NetworkOpParams } from './networks/network-ops.js';
import type { Duplex } from 'node:stream';
import type { Result } from '../core/result.js';

/** Virtual address text form `N:XXXX.YYYY.YYYY` (see wire/address.ts). */
export type VirtualAddrText = string;
/** A peer named by virtual address text, hostname, or numeric node id (as text). */
export type PeerRef = string;

/** The smallest sendFile rate cap, bytes per second. */
export const MIN_RATE_LIMIT_BYTES_PER_SEC = 16 * 1024;

/** Options of sendFile. */
export interface SendFileOptions {
  /** Redial a cut transfer and resume it for this long without progress (default 0: fail at once; a later call resumes). */
  retryForMs?: number;
  /** Cap the sending rate at this many bytes per second (at least 16 KiB/s; default: no cap). */
  rateBytesPerSec?: number;
}

/** What rotate-key returns (issue 14). */
export interface KeyRotationInfo {
  node_id: number;
  old_public_key: string;
  new_public_key: string;
  by: 'local' | 'recovery';
  identity_file: string;
}

export interface NodeInfo {
  /** 0 until the registry assigned one (`registered` false). */
  node_id: number;
  /** null until registered: node 0 is nobody's address. */
  address: VirtualAddrText | null;
  /** Whether the registry has assigned this node its id (issue 17: no fake address while it has not). */
  registered: boolean;
  /** 'registered' (connected), 'reconnecting' (registered before, connection lost), 'connecting' (never registered yet). */
  registry_state: 'registered' | 'reconnecting' | 'connecting' | 'deregistered';
  /** Why the registry is in that state, in one sentence (what to do when it is not registered). */
  registry_reason: string;
  /** The last failure to reach the registry, or null. */
  registry_error: { code: string; message: string; hint: string | null } | null;
  /** The beacon (UDP) this node uses. */
  beacon: string;
  /** Why nat_type is what it is. */
  nat_reason: string;
  /** Why this datapath (native addon, or why node:dgram). */
  datapath_reason: string;
  hostname: string | null;
  public_key: string; // base64 Ed25519
  public: boolean;
  tags: string[];
  registry: string; // host:port
  registry_connected: boolean;
  listen: string; // udp host:port of the tunnel socket
  public_endpoint: string | null; // observed by the beacon
  nat_type: string | null;
  uptime_s: number;
  peers: number;
  connections: number;
  datapath: 'native' | 'dgram';
  version: string;
  /** What carries relay frames now (issue 13): UDP, or the WebSocket to the rendezvous's compat port. */
  transport: 'udp' | 'wss';
  /** --transport as configured. */
  transport_mode: 'auto' | 'udp' | 'tcp';
  /** Why `transport` is what it is (one human sentence). */
  transport_reason: string;
  /** The rendezvous's compat (TLS) port, host:port. */
  compat: string;
  /** The HTTP proxy the compat connections use (URL without the password), or null. */
  proxy: string | null;
  /** The last compat failure (fingerprint_mismatch, proxy_failed, connection_failed, timeout, …), or null. */
  transport_error: { code: string; message: string; hint: string | null } | null;
  /** Datagrams on virtual ports since the start, and where any were dropped (a flood shows which queue is short). */
  datagrams?: DatagramCountersInfo;
}

export interface DatagramCountersInfo {
  /** Reached a bound socket. */
  received: number;
  /** Arrived for a port nobody has bound. */
  dropped_no_listener: number;
  /** A bound socket's queue (4096 datagrams) was full: the oldest went. Through the daemon this is the client
   * not reading its channel fast enough. */
  dropped_queue_full: number;
  /** Tunnel packets the datapath dropped before decryption (its receive ring full), of rx_packets read. */
  datapath_rx_dropped: number;
  datapath_rx_packets: number;
}

export interface PeerEntry {
  node_id: number;
  address: VirtualAddrText;
  hostname: string | null;
  endpoint: string | null; // udp ip:port in use
  path: 'direct' | 'relay' | 'none';
  encrypted: boolean;
  suite: 'noise' | 'legacy' | null;
  /** The data frames' AEAD: agreed per Noise session (AES-256-GCM when both peers have hardware AES), AES-256-GCM
   * for the v0.5 suite; null without a session. */
  cipher?: 'chacha20-poly1305' | 'aes-256-gcm' | null;
  trusted: boolean;
  last_seen_ms: number | null;
  rtt_ms: number | null;
  /** 'wss' when the path is the relay and our relay frames go over the WebSocket; else 'udp'. */
  transport: 'udp' | 'wss';
  /** Largest UDP payload the path carries (path MTU discovery; 1452 until a probe confirms more), null: no path. */
  path_mtu?: number | null;
  /** Path MTU discovery on this path: 'search', 'complete', 'idle' (starts with the first data sent to the peer), or
   * 'off' (relay, extra socket, --no-pmtud, v0.5). */
  pmtud?: 'off' | 'idle' | 'search' | 'complete';
}

export interface ConnectionEntry {
  id: number;
  peer: VirtualAddrText;
  peer_node_id: number;
  local_port: number;
  remote_port: number;
  state: string;
  cwnd_bytes: number;
  srtt_ms: number;
  bytes_in_flight: number;
  bytes_sent: number;
  bytes_received: number;
  retransmits: number;
  /** Transport packets sent and received on this connection (a bulk sender's received ones are ACKs). */
  packets_sent: number;
  packets_received: number;
}

export interface TrustEntry {
  node_id: number;
  address: VirtualAddrText;
  hostname: string | null;
  mutual: boolean;
  approved_at: string; // ISO time
  public_key?: string;
}

export interface PendingRequest {
  node_id: number;
  address: VirtualAddrText;
  hostname: string | null;
  justification: string;
  received_at: string; // ISO time
}

export interface FindResult {
  node_id: number;
  address: VirtualAddrText;
  hostname: string | null;
  public: boolean;
  tags: string[];
  public_key: string;
}

export interface PingResult {
  seq: number;
  bytes: number;
  rtt_ms: number;
  error?: string;
}

export type MessageType = 'text' | 'json' | 'binary' | 'file';

export interface InboxMessage {
  id: string;
  from: VirtualAddrText;
  from_hostname: string | null;
  type: MessageType;
  data: string; // utf8 for text/json, base64 for binary
  size: number;
  received_at: string;
  /** The id of the message this one answers (send-message --reply-to); absent when it answers none. */
  reply_to?: string;
}

export interface InboxQuery {
  clear?: boolean;
  /** At most this many messages. */
  limit?: number;
  /** Stop adding messages once their stored size passes this (one is always returned). */
  maxBytes?: number;
  since?: string;
  /** Only messages before this cursor (a --latest page's next_before) or RFC 3339 time. */
  before?: string;
  /** Newest first (pages on with next_before). */
  latest?: boolean;
  /** Only messages from this peer (virtual address, node id or hostname). */
  from?: string;
  /** Only this message. */
  id?: string;
  /** Only replies to this message id. */
  replyTo?: string;
}

/** What NodeApi.sendMessage reports (the original's fields, and what issue 14 added). */
export interface SendMessageResult {
  bytes: number;
  ack: boolean;
  /** The id the receiver stored it under (replies name it in reply_to); null from a receiver that assigns none. */
  id?: string | null;
  ack_text?: string | null;
  reply_to?: string;
}

/** NodeApi.waitMessage: the first inbox message that matches, received after `since`. */
export interface WaitMessageQuery {
  /** Only replies to this message id. */
  replyTo: string;
  /** Only from this peer (virtual address, node id or hostname). */
  from?: string;
  /** Also look at messages stored since this cursor or RFC 3339 time (a reply may land before the wait starts). */
  since?: string;
  timeoutMs: number;
  /** Ends the wait early (timeout): the IPC server aborts it when its client goes away. */
  signal?: AbortSignal;
}

export interface RegisterResult {
  node_id: number;
  address: VirtualAddrText;
  public_key: string;
  hostname: string | null;
  listen_addr: string;
}

/** A registry lookup by node id, with the original's field names. */
export interface LookupEntry {
  node_id: number;
  address: VirtualAddrText;
  public_key: string;
  public: boolean;
  hostname?: string;
  tags?: string[];
  /** Public nodes only: the endpoint they registered. */
  real_addr?: string;
  polo_score: number;
  task_exec: boolean;
}

export interface InboxPageResult {
  messages: InboxMessage[];
  cleared?: number;
  /** Pass as `since` for the next page; null when the page is empty. */
  next_since?: string | null;
  /** More messages follow this page. */
  has_more?: boolean;
  /** --latest pages: pass as `before` for the next (older) page. */
  next_before?: string | null;
}

export interface ReceivedFile {
  name: string;
  path: string;
  size: number;
  from: VirtualAddrText;
  sha256: string;
  received_at: string;
}

/** send-file's result; the fields after `name` are the resumable transfer's (issue 14) and may be absent. */
export interface SendFileResult {
  bytes: number;
  sha256: string;
  name: string;
  target?: VirtualAddrText;
  ack?: boolean;
  ack_text?: string | null;
  protocol?: 'resumable' | 'single-frame';
  resumed_from?: number;
  attempts?: number;
  resume_offsets?: number[];
  stored_as?: string | null;
  duration_ms?: number;
}

export interface ReceivedQuery {
  clear?: boolean;
  /** At most this many files. */
  limit?: number;
  /** An RFC 3339 time (files received at/after it) or a page's next_since. */
  since?: string;
}

export interface ReceivedPageResult {
  files: ReceivedFile[];
  cleared?: number;
  has_more?: boolean;
  next_since?: string | null;
}

export interface BenchResult {
  bytes: number;
  duration_ms: number;
  send_mbps: number; // MB/s as the original reports
  throughput_mbps?: number;
}

export interface EventMessage {
  topic: string;
  data: string;
  from: VirtualAddrText;
  received_at: string;
}

/** A reliable, ordered, encrypted byte stream to one peer port. End = FIN; destroy = RST. */
export interface PilotStream extends Duplex {
  readonly remoteAddr: VirtualAddrText;
  readonly remoteNodeId: number;
  readonly remotePort: number;
  readonly localPort: number;
}

export interface PortListener {
  readonly port: number;
  /** Resolves with the next inbound stream; null when the listener closed. */
  accept(): Promise<PilotStream | null>;
  close(): void;
}

export interface Datagram {
  from: VirtualAddrText;
  fromNodeId: number;
  fromPort: number;
  port: number;
  data: Uint8Array;
}

export interface DatagramSocket {
  readonly port: number;
  send(to: PeerRef, port: number, data: Uint8Array): Promise<Result<void>>;
  /** Next datagram, or null on close / timeout. */
  recv(timeoutMs?: number): Promise<Datagram | null>;
  /** The next datagram already queued, without waiting (null when none is): drain a burst in one turn. */
  tryRecv(): Datagram | null;
  /** Datagrams this socket's own receive queue dropped, oldest first, because it was full (not read fast enough). */
  readonly dropped: number;
  close(): void;
}

export interface ProgressFn {
  (bytesDone: number, bytesTotal: number): void;
}

/**
 * Everything an agent can ask of its node. Every expected failure is a Result with a PilotError code
 * (invalid_argument, not_found, connection_failed, timeout, …), never a rejection.
 */
export interface NodeApi {
  info(): Promise<Result<NodeInfo>>;
  setHostname(hostname: string): Promise<Result<{ hostname: string }>>;
  clearHostname(): Promise<Result<{ hostname: null }>>;
  setVisibility(isPublic: boolean): Promise<Result<{ public: boolean }>>;
  setTags(tags: string[]): Promise<Result<{ tags: string[] }>>;
  find(query: PeerRef): Promise<Result<FindResult>>;

  handshake(peer: PeerRef, justification: string): Promise<Result<{ node_id: number; status: string }>>;
  pending(): Promise<Result<{ pending: PendingRequest[] }>>;
  approve(nodeId: number): Promise<Result<{ node_id: number; status: 'approved' }>>;
  reject(nodeId: number, reason?: string): Promise<Result<{ node_id: number; status: 'rejected' }>>;
  trusted(): Promise<Result<{ trusted: TrustEntry[] }>>;
  untrust(nodeId: number): Promise<Result<{ node_id: number; status: 'untrusted' }>>;
  /**
   * Issue 14: rotate the identity key (signed by the current key, or by the recovery key given as `init` printed
   * it). Peers that trust us follow without a trust handshake. Optional: older nodes lack it.
   */
  rotateKey?(opts?: { recoveryKey?: string }): Promise<Result<KeyRotationInfo>>;

  dial(peer: PeerRef, port: number, opts?: { timeoutMs?: number }): Promise<Result<PilotStream>>;
  listen(port: number): Result<PortListener>;
  openDatagramSocket(port: number): Result<DatagramSocket>;

  /** `opts.replyTo`: the id of the message this one answers. */
  sendMessage(peer: PeerRef, data: Uint8Array, type: MessageType, opts?: { replyTo?: string }): Promise<Result<SendMessageResult>>;
  /** Wait for an inbox message matching `q` (a reply). Errors: timeout, invalid_argument. */
  waitMessage(q: WaitMessageQuery): Promise<Result<{ message: InboxMessage }>>;
  /**
   * One page of the inbox, oldest first (all of it when no limit/maxBytes is given); `since` = a page's
   * `next_since` or an RFC 3339 time. With `clear`: removes every message and returns only `cleared`.
   */
  inbox(opts?: InboxQuery): Promise<Result<InboxPageResult>>;
  /** See SendFileOptions: retry a cut transfer for a while, cap the sending rate. */
  sendFile(peer: PeerRef, path: string, progress?: ProgressFn, opts?: SendFileOptions): Promise<Result<SendFileResult>>;
  /** Received files, oldest first; `limit`/`since` page (see ReceivedQuery). With `clear`: only `cleared`. */
  received(opts?: ReceivedQuery): Promise<Result<ReceivedPageResult>>;
  publish(peer: PeerRef, topic: string, data: Uint8Array): Promise<Result<{ topic: string; bytes: number }>>;
  /** Events arrive on `onEvent` until the returned close() is called or the peer goes away. */
  subscribe(peer: PeerRef, topic: string, onEvent: (e: EventMessage) => void): Promise<Result<{ close(): void; done: Promise<void> }>>;

  ping(peer: PeerRef, opts: { count: number; intervalMs: number; size?: number; timeoutMs?: number }): Promise<Result<{ results: PingResult[] }>>;
  bench(peer: PeerRef, bytes: number, progress?: ProgressFn): Promise<Result<BenchResult>>;

  /** Register this node's identity with the registry now (again, after deregister); listenAddr overrides the advertised UDP endpoint. */
  register(opts?: { listenAddr?: string }): Promise<Result<RegisterResult>>;
  /** Remove this node from the registry (until `register` or a restart). */
  deregister(): Promise<Result<{ node_id: number; status: 'deregistered' }>>;
  /** The registry's entry for a node id. Errors: not_found, connection_failed. */
  lookup(nodeId: number): Promise<Result<LookupEntry>>;

  peers(): Promise<Result<{ peers: PeerEntry[] }>>;
  connections(): Promise<Result<{ connections: ConnectionEntry[] }>>;
  disconnect(connectionId: number): Promise<Result<{ id: number }>>;

  /** The webhook (src/node/webhooks/; issue 14). Optional: nodes without it answer not supported. */
  setWebhook?(url: string, opts?: { secret?: string | null; events?: string[] | string | null }): Promise<Result<WebhookStatus>>;
  clearWebhook?(): Promise<Result<{ cleared: boolean; dropped: number }>>;
  webhookStatus?(): Promise<Result<WebhookStatus>>;
  /** Custom networks (issue 15): create/list/join/leave/members/invite/invites/accept/reject/delete/rename/promote/demote/kick/role/broadcast. */
  network(params: NetworkOpParams): Promise<Result<unknown>>;

  shutdown(): Promise<void>;

  /** The audit log (issue 15, src/node/audit/): records oldest first; `sinceMs` = at or after, `limit` = the newest n. */
  audit?(q?: { sinceMs?: number; limit?: number }): Promise<Result<AuditPage>>;
  /** The whole audit log as a signed export (JSON lines: header + records). */
  auditExport?(): Promise<Result<AuditExport>>;
}

/** One audit record as `pilotctl audit` shows it. */
export interface AuditEntry {
  seq: number;
  at: string;
  at_ms: number;
  kind: string;
  data: Record<string, unknown>;
  hash: string;
}

export interface AuditPage {
  entries: AuditEntry[];
  /** Records in the log (not only this page). */
  total: number;
  path: string;
  public_key: string;
}

export interface AuditExport {
  /** The export file's content (JSON lines). */
  text: string;
  records: number;
  head: string;
  public_key: string;
}

export type { WebhookStatus } from './webhooks/dispatcher.js';
import type { WebhookStatus } from './webhooks/dispatcher.js';

/** What a built-in service gets from its node (services/ depend on this only). */
export interface ServiceHost {
  readonly nodeId: number;
  readonly address: VirtualAddrText;
  /** The node's home directory (inbox/, received/ live under it). */
  readonly home: string;
  listen(port: number): Result<PortListener>;
  dial(peer: PeerRef, port: number, opts?: { timeoutMs?: number }): Promise<Result<PilotStream>>;
  hostnameOf(nodeId: number): string | null;
}
