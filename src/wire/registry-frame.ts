// Registry wire protocol (TCP): frames are `[u32 BE length][JSON object]`, the object carries `type`
// (pkg/registry/server.go readMessage/writeMessage of the original; its server drops frames over 1 MiB).
// Also the ASCII challenges that signed requests cover, shared by the server (src/registry) and the daemon's
// client (src/node/registry-client.ts). Pure: bytes in, values out, never throws on input.
import { createHash } from 'node:crypto';
import { ByteQueue } from './byte-queue.js';
import { err, ok, type Result } from '../core/result.js';
import { readU32, writeU32 } from './bytes.js';

/** The original's limit (server.go readMessage: `length > 1<<20`). Replies (a full poll_handshakes_ok) may need it. */
export const REGISTRY_MAX_FRAME_BYTES = 1 << 20;

/**
 * Our server's limit for requests: the largest valid one (request_handshake with a 4096-byte justification,
 * every byte JSON-escaped) stays far below it, and a hostile partial frame holds 16x less than at 1 MiB.
 */
export const REGISTRY_MAX_REQUEST_BYTES = 64 * 1024;

/** Estimated memory per held chunk beyond its bytes (object, backing store header), for pendingCost. */
export const REGISTRY_CHUNK_OVERHEAD_BYTES = 128;

/** A decoded registry message: any JSON object. `type` is checked by the receiver, not the framing. */
export type RegistryMessage = Record<string, unknown>;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Encode one message as a frame. invalid_argument when it cannot be serialised or exceeds the limit. */
export function encodeRegistryFrame(
  msg: RegistryMessage,
  maxFrameBytes: number = REGISTRY_MAX_FRAME_BYTES,
): Result<Uint8Array> {
  let json: string;
  try {
    json = JSON.stringify(msg);
  } catch (e) {
    return err('invalid_argument', 'registry message is not serialisable', { cause: e });
  }
  if (typeof json !== 'string') return err('invalid_argument', 'registry message is not serialisable');
  const body = textEncoder.encode(json);
  if (body.length > maxFrameBytes) {
    return err('invalid_argument', `registry frame of ${body.length} bytes exceeds ${maxFrameBytes}`);
  }
  const out = new Uint8Array(4 + body.length);
  writeU32(out, 0, body.length);
  out.set(body, 4);
  return ok(out);
}

/** Parse one frame body (without the length prefix). Must be UTF-8 JSON whose top level is an object. */
export function decodeRegistryBody(body: Uint8Array): Result<RegistryMessage> {
  let text: string;
  try {
    text = textDecoder.decode(body);
  } catch (e) {
    return err('invalid_argument', 'registry frame is not UTF-8', { cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return err('invalid_argument', 'registry frame is not JSON', { cause: e });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return err('invalid_argument', 'registry frame is not a JSON object');
  }
  return ok(value as RegistryMessage);
}

/**
 * Incremental decoder: feed TCP chunks, get whole messages. After the first error (oversized length,
 * bad JSON) it stays failed — the stream is out of sync, the caller closes that connection.
 */
export class RegistryFrameDecoder {
  private readonly queue = new ByteQueue();
  private failure: Result<never> | null = null;

  constructor(private readonly maxFrameBytes: number = REGISTRY_MAX_FRAME_BYTES) {}

  /** Bytes held waiting for the rest of a frame. */
  get pendingBytes(): number {
    return this.queue.length;
  }

  /**
   * What the held partial frame costs in memory, for budgets: its bytes plus a fixed overhead per held chunk
   * (a peer dripping 1-byte segments makes one chunk object per byte).
   */
  get pendingCost(): number {
    return this.queue.length + this.queue.chunkCount * REGISTRY_CHUNK_OVERHEAD_BYTES;
  }

  /** Drop whatever is held (the connection is gone); the decoder stays usable. */
  clear(): void {
    this.queue.clear();
  }

  /** Append a chunk and return every message it completes (possibly none). */
  push(chunk: Uint8Array): Result<RegistryMessage[]> {
    if (this.failure) return this.failure;
    this.queue.push(chunk);
    const out: RegistryMessage[] = [];
    while (this.queue.length >= 4) {
      const head = this.queue.peek(4);
      const bodyBytes = readU32(head, 0);
      if (bodyBytes > this.maxFrameBytes) {
        this.failure = err('invalid_argument', `registry frame of ${bodyBytes} bytes exceeds ${this.maxFrameBytes}`, {
          detail: { frameBytes: bodyBytes, maxFrameBytes: this.maxFrameBytes },
        });
        this.queue.clear();
        return this.failure;
      }
      if (this.queue.length < 4 + bodyBytes) break;
      const frame = this.queue.take(4 + bodyBytes);
      const msg = decodeRegistryBody(frame.subarray(4));
      if (!msg.ok) {
        this.failure = msg;
        this.queue.clear();
        return msg;
      }
      out.push(msg.value);
    }
    return ok(out);
  }
}

// Field readers and the typed messages: src/wire/registry-messages.ts.
export { fieldBool, fieldString, fieldU32 } from './registry-messages.js';

// ---- Signed-request challenges ----
// The original signs fixed ASCII strings (pkg/registry/client.go, server.go). They carry no time or nonce, so
// a captured signature replays forever, and several leave out fields that matter (set_hostname's name,
// respond's accept, rotate's new key). Our extension ("fresh" signatures): the request carries `ts` (unix
// seconds) and `nonce` (base64 of 8..64 random bytes) and the signed string is `<bound>:<ts>:<nonce>`, where
// <bound> is the challenge below that covers every field the server acts on (`bound.*`; for requests whose
// fields are all ids the original challenge already covers them). The server rejects stale ts and repeated
// nonces. Every field inside <bound> is an id, a validated name, base64, or a fixed word, so no field can
// contain ':' except the last one, which makes the string unambiguous (listen_addr of register is last).

export const challenge = {
  heartbeat: (nodeId: number) => `heartbeat:${nodeId}`,
  pollHandshakes: (nodeId: number) => `poll_handshakes:${nodeId}`,
  setHostname: (nodeId: number) => `set_hostname:${nodeId}`,
  /** Extension form, used only together with ts/nonce. */
  setHostnameBound: (nodeId: number, hostname: string) => `set_hostname:${nodeId}:${hostname}`,
  setTags: (nodeId: number) => `set_tags:${nodeId}`,
  setVisibility: (nodeId: number) => `set_visibility:${nodeId}`,
  setTaskExec: (nodeId: number) => `set_task_exec:${nodeId}`,
  deregister: (nodeId: number) => `deregister:${nodeId}`,
  resolve: (requesterId: number, targetId: number) => `resolve:${requesterId}:${targetId}`,
  reportTrust: (nodeId: number, peerId: number) => `report_trust:${nodeId}:${peerId}`,
  revokeTrust: (nodeId: number, peerId: number) => `revoke_trust:${nodeId}:${peerId}`,
  punch: (nodeA: number, nodeB: number) => `punch:${nodeA}:${nodeB}`,
  requestHandshake: (fromId: number, toId: number) => `handshake:${fromId}:${toId}`,
  respondHandshake: (nodeId: number, peerId: number) => `respond:${nodeId}:${peerId}`,
  rotateKey: (nodeId: number) => `rotate:${nodeId}`,
  /** Extension: identified lookup (full answer for trusted requesters). */
  lookup: (requesterId: number, targetId: number) => `lookup:${requesterId}:${targetId}`,
  /** Extension: subscribe_push. */
  subscribePush: (nodeId: number) => `subscribe_push:${nodeId}`,
} as const;

/**
 * The field-covering challenges of our fresh signatures (always used with ts/nonce, see above). Requests not
 * listed here sign their `challenge.*` string with ts/nonce: every field they carry is in it already.
 */
export const bound = {
  /**
   * register of our clients: the key, the requested hostname ('' for none), the recovery public key when one is
   * sent (issue 14: `recovery=<base64>`, before the listen address, which is last because it may hold ':').
   */
  register: (publicKeyB64: string, hostname: string, listenAddr: string, recoveryKeyB64 = '') =>
    recoveryKeyB64 === '' ? `register:${publicKeyB64}:${hostname}:${listenAddr}` : `register:${publicKeyB64}:${hostname}:recovery=${recoveryKeyB64}:${listenAddr}`,
  setHostname: (nodeId: number, hostname: string) => challenge.setHostnameBound(nodeId, hostname),
  /** Tags after the server's normalisation (leading '#' removed), joined by ','. */
  setTags: (nodeId: number, tags: readonly string[]) => `set_tags:${nodeId}:${tags.join(',')}`,
  setVisibility: (nodeId: number, isPublic: boolean) => `set_visibility:${nodeId}:${isPublic ? 'public' : 'private'}`,
  setTaskExec: (nodeId: number, enabled: boolean) => `set_task_exec:${nodeId}:${enabled ? 'enabled' : 'disabled'}`,
  /** The justification enters as the hex SHA-256 of its UTF-8 bytes (free text, possibly with ':'). */
  requestHandshake: (fromId: number, toId: number, justification: string) =>
    `handshake:${fromId}:${toId}:${createHash('sha256').update(justification, 'utf8').digest('hex')}`,
  respondHandshake: (nodeId: number, peerId: number, accept: boolean) => `respond:${nodeId}:${peerId}:${accept ? 'accept' : 'reject'}`,
  rotateKey: (nodeId: number, newPublicKeyB64: string) => `rotate:${nodeId}:${newPublicKeyB64}`,
  /** Extension: identified resolve_hostname (private nodes answer only requesters they trust). */
  resolveHostname: (requesterId: number, hostname: string) => `resolve_hostname:${requesterId}:${hostname}`,
} as const;

/** Extension names our registry announces in `register_ok.extensions` (only to freshly signed registrations). */
export const REGISTRY_EXTENSIONS = ['fresh-signatures-v1', 'push-v1', 'beacon-token-v1'] as const;
/** The one a client checks before it relies on fresh signatures (it then never falls back to bare ones). */
export const EXTENSION_FRESH_SIGNATURES = 'fresh-signatures-v1';

/** The replay-safe form of a challenge. */
export function withFreshness(base: string, tsSec: number, nonce: string): string {
  return `${base}:${tsSec}:${nonce}`;
}

/** Registry address text of the original: `0:0000.HHHH.LLLL` (upper-case hex, protocol.Addr.String). */
export function registryAddressText(nodeId: number, network = 0): string {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  return `${network}:${hex(network)}.${hex((nodeId >>> 16) & 0xffff)}.${hex(nodeId & 0xffff)}`;
}
