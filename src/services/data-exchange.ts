// Data exchange service (port 1001) and its clients send-message / send-file. Frame layout and ACK text:
// see data-exchange-codec.ts. Server behaviour follows the original's handleDataExchangeConn
// (TeoSlayer/pilotprotocol, pkg/daemon/services.go): frames are handled in order on one connection,
// TEXT/JSON/BINARY go to the inbox, FILE with a non-empty name goes to received/, anything else is only
// ACKed; a length over the cap or a truncated frame drops just that connection.
// Unlike the original we never hold a frame in memory: FILE data and inbox messages stream to disk as they
// arrive (at most one 64 KiB chunk per connection in memory), and send-file streams from disk (the frame
// length is known up front from stat). Storage quotas refuse a frame with an ERR ack carrying
// `quota_exceeded` (data-exchange-codec.ts); the sending side turns that into the typed error.
import { openFileToSend } from './fs-safe.js';
import { createHash, randomUUID } from 'node:crypto';
import { basename } from 'node:path';
import { err, ok, type Result } from '../core/result.js';
import type { PilotError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { PORT_DATAEXCHANGE } from '../wire/address.js';
import type { MessageType, PeerRef, PilotStream, ProgressFn, ServiceHost } from '../node/api.js';
import {
  ackText,
  decodeFrameHeader,
  decodeMeta,
  encodeMeta,
  FRAME_TYPE_META,
  MAX_META_PAYLOAD_BYTES,
  metaAckText,
  parseMetaAck,
  encodeFileFramePrefix,
  encodeFrame,
  errAckText,
  FILE_NAME_LEN_BYTES,
  FRAME_HEADER_BYTES,
  FRAME_TYPE_FILE,
  FRAME_TYPE_TEXT,
  frameTypeName,
  frameTypeOf,
  messageTypeOf,
  parseAck,
} from './data-exchange-codec.js';
import type { Inbox, InboxEntryMeta } from './inbox.js';
import type { ReceivedFiles, StoredReceivedFile } from './received-files.js';
import { closeStream, guardStream, messageOf, StreamReader, withTimeout, writeChunk } from './stream-io.js';
import { XFER_OFFER } from './file-transfer-codec.js';
import { sendFileResumable, serveFileTransfer, type FileTransferServerDeps, type ResumableSendOptions, type ResumableSendReport } from './file-transfer.js';

const IO_CHUNK_BYTES = 64 * 1024;

export interface DataExchangeServerDeps {
  inbox: Inbox;
  received: ReceivedFiles;
  hostnameOf(nodeId: number): string | null;
  logger: Logger;
  /** Frames longer than this drop the connection (the original: 16 MiB). */
  maxFramePayloadBytes: number;
  /** Files larger than this are read and discarded with an ERR ack. */
  maxFileBytes: number;
  onMessage?(m: InboxEntryMeta): void;
  onFile?(f: StoredReceivedFile): void;
  /** Resumable transfers (file-transfer.ts); without it an OFFER frame is ACKed as unknown, as the original does. */
  fileTransfer?: FileTransferServerDeps;
}

/** Read and discard `n` bytes. */
async function drain(reader: StreamReader, n: number): Promise<Result<void>> {
  return pump(reader, n, null).then((r) => ('drop' in r ? err('connection_failed', r.drop, { detail: { truncated: true } }) : ok()));
}

interface ChunkSink {
  write(chunk: Uint8Array): Promise<Result<void>>;
  abort(): Promise<void>;
}

/**
 * Read exactly `n` bytes into `sink` as they arrive (never more than one chunk in memory). After a sink error
 * the rest is read and discarded, so the connection stays in step; a stream that ends inside the frame aborts
 * the sink and drops the connection. `sink` null = discard.
 */
async function pump(reader: StreamReader, n: number, sink: ChunkSink | null): Promise<{ drop: string } | { failed: PilotError | null }> {
  let left = n;
  let failed: PilotError | null = null;
  while (left > 0) {
    const r = await reader.readSome(Math.min(left, IO_CHUNK_BYTES));
    if (!r.ok || r.value === null) {
      if (sink !== null && failed === null) await sink.abort();
      return { drop: r.ok ? 'stream ended inside a frame' : r.error.message };
    }
    left -= r.value.length;
    if (sink !== null && failed === null) {
      const w = await sink.write(r.value);
      if (!w.ok) failed = w.error; // the sink aborted itself
    }
  }
  return { failed };
}

/** The ERR ack for a refused or failed save; quota refusals carry their code (errAckText). */
function refusal(type: number, e: PilotError): string {
  return e.code === 'quota_exceeded' ? errAckText(type, e.message, 'quota_exceeded') : errAckText(type, e.message);
}

type FrameOutcome = { ack: string } | { drop: string };

/** What a META frame announced for the next frame: the id it gets and what it replies to. */
interface PendingMeta {
  id: string;
  replyTo: string | null;
}

/** Read a META frame; on success the next message frame gets `meta`. */
async function receiveMetaFrame(reader: StreamReader, payloadBytes: number): Promise<{ ack: string; meta: PendingMeta | null } | { drop: string }> {
  if (payloadBytes > MAX_META_PAYLOAD_BYTES) {
    const d = await drain(reader, payloadBytes);
    return d.ok ? { ack: errAckText(FRAME_TYPE_META, `META of ${payloadBytes} bytes is too large (max ${MAX_META_PAYLOAD_BYTES})`), meta: null } : { drop: d.error.message };
  }
  const p = await reader.readExactStrict(payloadBytes);
  if (!p.ok) return { drop: p.error.message };
  const m = decodeMeta(p.value);
  if (!m.ok) return { ack: errAckText(FRAME_TYPE_META, m.error.message), meta: null };
  const id = randomUUID();
  return { ack: metaAckText(payloadBytes, id), meta: { id, replyTo: m.value.replyTo } };
}

/** Serve one data exchange connection until the peer closes it or breaks the protocol. */
export async function serveDataExchange(stream: PilotStream, deps: DataExchangeServerDeps): Promise<void> {
  const log = deps.logger.child({ service: 'dataexchange', remote: stream.remoteAddr });
  guardStream(stream, log);
  const reader = new StreamReader(stream);
  let meta: PendingMeta | null = null;
  for (;;) {
    const header = await reader.readExact(FRAME_HEADER_BYTES);
    if (!header.ok) {
      log.debug({ err: header.error.message }, 'connection dropped');
      stream.destroy();
      return;
    }
    if (header.value === null) break;
    const h = decodeFrameHeader(header.value, deps.maxFramePayloadBytes);
    if (!h.ok) {
      log.warn({ err: h.error.message }, 'bad frame, dropping connection');
      stream.destroy();
      return;
    }
    if (h.value.type === XFER_OFFER && deps.fileTransfer !== undefined) {
      // The connection becomes a resumable transfer (file-transfer-codec.ts) until it ends.
      await serveFileTransfer(stream, reader, header.value, deps.fileTransfer);
      return;
    }
    // A META applies to the frame right after it only.
    const announced = meta;
    meta = null;
    let outcome: FrameOutcome;
    if (h.value.type === FRAME_TYPE_META) {
      const m = await receiveMetaFrame(reader, h.value.payloadBytes);
      if ('meta' in m) meta = m.meta;
      outcome = m;
    } else if (h.value.type === FRAME_TYPE_FILE) outcome = await receiveFileFrame(stream, reader, h.value.payloadBytes, deps, log);
    else outcome = await receiveMessageFrame(stream, reader, h.value.type, h.value.payloadBytes, deps, log, announced);
    if ('drop' in outcome) {
      log.debug({ err: outcome.drop }, 'connection dropped');
      stream.destroy();
      return;
    }
    const ack = encodeFrame(FRAME_TYPE_TEXT, Buffer.from(outcome.ack, 'utf8'));
    if (!ack.ok || !(await writeChunk(stream, ack.value)).ok) {
      stream.destroy();
      return;
    }
  }
  closeStream(stream);
}

async function receiveMessageFrame(
  stream: PilotStream,
  reader: StreamReader,
  type: number,
  payloadBytes: number,
  deps: DataExchangeServerDeps,
  log: Logger,
  meta: PendingMeta | null = null,
): Promise<FrameOutcome> {
  const mt = messageTypeOf(type);
  if (mt === null || mt === 'file') {
    const d = await pump(reader, payloadBytes, null);
    return 'drop' in d ? d : { ack: ackText(type, payloadBytes) };
  }
  // Quota is checked on the declared size before anything is written, and again as the stored size grows.
  const sink = await deps.inbox.begin({
    from: stream.remoteAddr,
    from_hostname: deps.hostnameOf(stream.remoteNodeId),
    type: mt,
    bytes: payloadBytes,
    ...(meta ? { id: meta.id, reply_to: meta.replyTo } : {}),
  });
  const r = await pump(reader, payloadBytes, sink.ok ? sink.value : null);
  if ('drop' in r) return r;
  const failed = sink.ok ? r.failed : sink.error;
  if (failed !== null) {
    log.warn({ code: failed.code, err: failed.message, bytes: payloadBytes }, 'inbox message not saved');
    return { ack: refusal(type, failed) };
  }
  const saved = sink.ok ? await sink.value.commit() : sink;
  if (!saved.ok) {
    log.warn({ err: saved.error.message }, 'inbox save failed');
    return { ack: refusal(type, saved.error) };
  }
  log.info({ type: frameTypeName(type), bytes: payloadBytes, id: saved.value.id }, 'inbox message saved');
  deps.onMessage?.(saved.value);
  return { ack: ackText(type, payloadBytes) };
}

async function receiveFileFrame(
  stream: PilotStream,
  reader: StreamReader,
  payloadBytes: number,
  deps: DataExchangeServerDeps,
  log: Logger,
): Promise<FrameOutcome> {
  // The original's split: a payload too short for a name, or a name overrunning it, keeps the whole
  // payload and an empty name — ACKed, not saved.
  if (payloadBytes < FILE_NAME_LEN_BYTES) {
    const d = await drain(reader, payloadBytes);
    return d.ok ? { ack: ackText(FRAME_TYPE_FILE, payloadBytes) } : { drop: d.error.message };
  }
  const nl = await reader.readExactStrict(FILE_NAME_LEN_BYTES);
  if (!nl.ok) return { drop: nl.error.message };
  const nameLen = nl.value.readUInt16BE(0);
  if (FILE_NAME_LEN_BYTES + nameLen > payloadBytes) {
    const d = await drain(reader, payloadBytes - FILE_NAME_LEN_BYTES);
    return d.ok ? { ack: ackText(FRAME_TYPE_FILE, payloadBytes) } : { drop: d.error.message };
  }
  const nameBytes = await reader.readExactStrict(nameLen);
  if (!nameBytes.ok) return { drop: nameBytes.error.message };
  const filename = nameBytes.value.toString('utf8');
  const dataBytes = payloadBytes - FILE_NAME_LEN_BYTES - nameLen;

  if (filename === '') {
    const d = await drain(reader, dataBytes);
    return d.ok ? { ack: ackText(FRAME_TYPE_FILE, dataBytes) } : { drop: d.error.message };
  }
  if (dataBytes > deps.maxFileBytes) {
    log.warn({ filename, bytes: dataBytes, max_bytes: deps.maxFileBytes }, 'file too large, discarded');
    const d = await drain(reader, dataBytes);
    return d.ok
      ? { ack: errAckText(FRAME_TYPE_FILE, `file too large: ${dataBytes} bytes (max ${deps.maxFileBytes})`) }
      : { drop: d.error.message };
  }

  // The declared size is checked against the quota before the first byte is written.
  const sink = await deps.received.begin(filename, stream.remoteAddr, deps.hostnameOf(stream.remoteNodeId), dataBytes);
  const r = await pump(reader, dataBytes, sink.ok ? sink.value : null);
  if ('drop' in r) return r;
  const failed = sink.ok ? r.failed : sink.error;
  if (failed !== null) {
    log.warn({ filename, code: failed.code, err: failed.message }, 'file not saved');
    return { ack: refusal(FRAME_TYPE_FILE, failed) };
  }
  const committed = sink.ok ? await sink.value.commit() : sink;
  if (!committed.ok) {
    log.warn({ filename, err: committed.error.message }, 'file save failed');
    return { ack: refusal(FRAME_TYPE_FILE, committed.error) };
  }
  log.info({ name: committed.value.name, bytes: dataBytes, sha256: committed.value.sha256 }, 'file saved');
  deps.onFile?.(committed.value);
  return { ack: ackText(FRAME_TYPE_FILE, dataBytes) };
}

// ---------------------------------------------------------------- clients

export const DEFAULT_ACK_TIMEOUT_MS = 30_000;
const MAX_ACK_PAYLOAD_BYTES = 64 * 1024;

export interface SendOptions {
  /** Dial timeout and how long to wait for the ACK (best effort, as in the original). */
  timeoutMs?: number;
}

export interface SendMessageOptions extends SendOptions {
  /** The id of the message this one answers (stored by the receiver as `reply_to`). */
  replyTo?: string;
}

/** The contract's {bytes, ack} plus the original's JSON fields (target, type, and the ACK text). */
export interface SendMessageReport {
  target: string;
  type: Exclude<MessageType, 'file'>;
  bytes: number;
  /** True when the peer answered with an "ACK …" frame. */
  ack: boolean;
  /** The ACK frame's text as the original prints it in "ack", e.g. "ACK TEXT 5 bytes"; null if none came. */
  ack_text: string | null;
  /** The id the receiver stored the message under (replies name it in reply_to); null from an original receiver. */
  id: string | null;
  /** What this message answers, when sent with replyTo. */
  reply_to?: string;
}

export interface SendFileReport {
  target: string;
  /** The name sent (basename of the path); the original's field is "filename". */
  name: string;
  filename: string;
  bytes: number;
  sha256: string;
  ack: boolean;
  ack_text: string | null;
}

/** Read the peer's ACK: one TEXT frame. Best effort: any failure gives null. */
async function readAck(stream: PilotStream, reader: StreamReader, timeoutMs: number): Promise<string | null> {
  const read = async (): Promise<Result<string>> => {
    const h = await reader.readExactStrict(FRAME_HEADER_BYTES);
    if (!h.ok) return h;
    const d = decodeFrameHeader(h.value, MAX_ACK_PAYLOAD_BYTES);
    if (!d.ok) return d;
    const p = await reader.readExactStrict(d.value.payloadBytes);
    if (!p.ok) return p;
    return ok(p.value.toString('utf8'));
  };
  const r = await withTimeout(read(), timeoutMs, 'ack', () => stream.destroy());
  return r.ok ? r.value : null;
}

/** An ERR ack carrying quota_exceeded becomes that error; anything else is reported as the ACK it was. */
function quotaRefusal(target: string, ack: string | null): Result<never> | null {
  const a = parseAck(ack);
  if (a.kind !== 'err' || a.code !== 'quota_exceeded') return null;
  return err('quota_exceeded', `${target} refused it: ${a.reason}`, { detail: { target, ack } });
}

async function dialDataExchange(host: ServiceHost, peer: PeerRef, timeoutMs: number): Promise<Result<PilotStream>> {
  const d = await host.dial(peer, PORT_DATAEXCHANGE, { timeoutMs });
  if (!d.ok) return d;
  guardStream(d.value);
  return d;
}

/**
 * Send one TEXT/JSON/BINARY frame and wait (best effort) for the ACK. Errors: invalid_argument (type
 * 'file', > 16 MiB), quota_exceeded (the receiver refused it: its storage limit is reached), and whatever
 * dial returns (not_found, connection_failed, timeout); connection_failed if the write fails. Does I/O.
 */
export async function sendMessage(
  host: ServiceHost,
  peer: PeerRef,
  data: Uint8Array,
  type: MessageType,
  opts: SendMessageOptions = {},
): Promise<Result<SendMessageReport>> {
  if (type === 'file') return err('invalid_argument', 'use send-file for files', { hint: 'pilotctl send-file <peer> <path>' });
  if (type !== 'text' && type !== 'json' && type !== 'binary') {
    return err('invalid_argument', `unknown type "${String(type)}" (use text, json, or binary)`);
  }
  const frame = encodeFrame(frameTypeOf(type), data);
  if (!frame.ok) return frame;
  const replyTo = opts.replyTo ?? null;
  const meta = encodeFrame(FRAME_TYPE_META, encodeMeta({ replyTo }));
  if (!meta.ok) return meta;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
  const dialed = await dialDataExchange(host, peer, timeoutMs);
  if (!dialed.ok) return dialed;
  const stream = dialed.value;
  const reader = new StreamReader(stream);
  try {
    // META and the message in one write; the two ACKs come back in order.
    const w = await writeChunk(stream, Buffer.concat([meta.value, frame.value]));
    if (!w.ok) return err('connection_failed', `send: ${w.error.message}`);
    const metaAck = await readAck(stream, reader, timeoutMs);
    const ackTextValue = metaAck === null ? null : await readAck(stream, reader, timeoutMs);
    const refused = quotaRefusal(stream.remoteAddr, ackTextValue);
    if (refused !== null) return refused;
    const isAcked = ackTextValue !== null && ackTextValue.startsWith('ACK ');
    return ok({
      target: stream.remoteAddr,
      type,
      bytes: data.length,
      ack: isAcked,
      ack_text: ackTextValue,
      id: isAcked ? parseMetaAck(metaAck) : null,
      ...(replyTo !== null ? { reply_to: replyTo } : {}),
    });
  } finally {
    closeStream(stream);
  }
}

/**
 * Send a file: resumable and chunked to a node that speaks it, as one FILE frame (≤ 16 MiB) to an original
 * receiver (file-transfer.ts). Errors: see sendFileResumable. Does I/O.
 */
export function sendFile(
  host: ServiceHost,
  peer: PeerRef,
  path: string,
  progress?: ProgressFn,
  opts: SendOptions & ResumableSendOptions = {},
): Promise<Result<ResumableSendReport>> {
  return sendFileResumable(host, peer, path, sendFileSingleFrame, progress, opts);
}

/**
 * Stream a file as one FILE frame (name = basename of `path`), hashing as it goes, then wait (best
 * effort) for the ACK. `progress(bytesSent, fileBytes)` after each chunk. Files over the protocol's
 * 16 MiB frame limit are refused (invalid_argument) since the original's receivers would drop them.
 * Errors: not_found (no such file), invalid_argument (not a regular file, too large), internal (read
 * error, or the file shrank while sending), quota_exceeded (refused by the receiver's storage limit), dial
 * errors, connection_failed. Does I/O.
 */
export async function sendFileSingleFrame(
  host: ServiceHost,
  peer: PeerRef,
  path: string,
  progress?: ProgressFn,
  opts: SendOptions = {},
): Promise<Result<SendFileReport>> {
  const opened = await openFileToSend(path);
  if (!opened.ok) return opened;
  const { fh } = opened.value;
  try {
    const fileBytes = opened.value.size;
    const name = basename(path);
    const prefix = encodeFileFramePrefix(name, fileBytes);
    if (!prefix.ok) return prefix;

    const timeoutMs = opts.timeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
    const dialed = await dialDataExchange(host, peer, timeoutMs);
    if (!dialed.ok) return dialed;
    const stream = dialed.value;
    const reader = new StreamReader(stream);
    try {
      const w0 = await writeChunk(stream, prefix.value);
      if (!w0.ok) return err('connection_failed', `send failed: ${w0.error.message}`);
      const hash = createHash('sha256');
      let sent = 0;
      while (sent < fileBytes) {
        // A fresh buffer per chunk: the stream may keep it queued after write() returns.
        const buf = Buffer.allocUnsafe(Math.min(IO_CHUNK_BYTES, fileBytes - sent));
        let n: number;
        try {
          ({ bytesRead: n } = await fh.read(buf, 0, buf.length, sent));
        } catch (e) {
          stream.destroy();
          return err('internal', `read file: ${messageOf(e)}`, { cause: e });
        }
        if (n === 0) {
          // The frame promised `fileBytes`; a short frame would desynchronise the receiver, so reset.
          stream.destroy();
          return err('internal', `file shrank while sending: ${path}`, { detail: { bytes_sent: sent, bytes_expected: fileBytes } });
        }
        const chunk = n === buf.length ? buf : buf.subarray(0, n);
        hash.update(chunk);
        const w = await writeChunk(stream, chunk);
        if (!w.ok) return err('connection_failed', `send failed: ${w.error.message}`, { detail: { bytes_sent: sent } });
        sent += n;
        progress?.(sent, fileBytes);
      }
      const ackTextValue = await readAck(stream, reader, timeoutMs);
      const refused = quotaRefusal(stream.remoteAddr, ackTextValue);
      if (refused !== null) return refused;
      return ok({
        target: stream.remoteAddr,
        name,
        filename: name,
        bytes: fileBytes,
        sha256: hash.digest('hex'),
        ack: ackTextValue !== null && ackTextValue.startsWith('ACK '),
        ack_text: ackTextValue,
      });
    } finally {
      closeStream(stream);
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}

