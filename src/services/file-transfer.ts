// Drivers of the resumable file transfer (the machines: file-transfer-machine.ts; the frames and how an
// original receiver is detected: file-transfer-codec.ts). They own the I/O: the stream, the file, the partial
// store, the clock. Memory per transfer: one DATA frame (≤ 1 MiB) at a time on either side; the file is
// streamed from disk and to disk, never held whole.
//
// Receiver: data-exchange.ts hands a connection over here when its first frame is an OFFER.
// Sender: hash the file (the offer names its SHA-256), dial port 1001, OFFER; an original receiver answers
// "ACK UNKNOWN(…)" and the file goes as the original's single FILE frame (≤ 16 MiB, data-exchange.ts). A
// connection that breaks after the receiver accepted (daemon restart, path change, network drop) is dialled
// again and resumes from the receiver's checkpointed offset, for up to `retryForMs` without progress.
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { err, ok, type Result } from '../core/result.js';
import type { PilotError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { PORT_DATAEXCHANGE } from '../wire/address.js';
import type { PeerRef, PilotStream, ProgressFn, ServiceHost } from '../node/api.js';
import type { ReceivedFiles, StoredReceivedFile } from './received-files.js';
import { PartialStore, onTakeOver, type PartialFile } from './file-transfer-store.js';
import { ReceiverMachine, SenderMachine, refusalOf, type ReceiverAction, type SenderAction } from './file-transfer-machine.js';
import { MAX_FRAME_PAYLOAD_BYTES } from './data-exchange-codec.js';
import { XFER_CHUNK_BYTES, XFER_MAX_FRAME_PAYLOAD_BYTES, type Offer } from './file-transfer-codec.js';
import { closeStream, guardStream, messageOf, StreamReader, writeChunk } from './stream-io.js';
import { openFileToSend } from './fs-safe.js';
import type { Reservation } from './quota.js';

/** The largest file an original receiver takes (its 16 MiB frame minus the name field, roughly). */
const SINGLE_FRAME_MAX_BYTES = MAX_FRAME_PAYLOAD_BYTES - 2;

function nowUs(): number {
  return performance.now() * 1000;
}

// ------------------------------------------------------------------------------------------- receiver

export interface FileTransferServerDeps {
  received: ReceivedFiles;
  partials: PartialStore;
  hostnameOf(nodeId: number): string | null;
  logger: Logger;
  /** Offers above this are refused (0 = no limit beyond the quotas). */
  maxFileBytes: number;
  onFile?(f: StoredReceivedFile): void;
  ackIntervalBytes?: number;
  idleTimeoutMs?: number;
}

/**
 * Serve one resumable transfer on `stream`, whose first frame header (`header`, 8 bytes) data exchange already
 * read. Returns when the connection is done; never rejects for peer behaviour.
 */
export async function serveFileTransfer(stream: PilotStream, reader: StreamReader, header: Uint8Array, deps: FileTransferServerDeps): Promise<void> {
  const log = deps.logger.child({ service: 'file-transfer', remote: stream.remoteAddr });
  const m = new ReceiverMachine(nowUs(), {
    ackIntervalBytes: deps.ackIntervalBytes,
    idleTimeoutUs: deps.idleTimeoutMs === undefined ? undefined : deps.idleTimeoutMs * 1000,
    maxFileBytes: deps.maxFileBytes,
  });
  let partial: PartialFile | null = null;
  let reservation: Reservation | null = null;
  let isClosed = false;
  const fromHostname = deps.hostnameOf(stream.remoteNodeId);

  const exec = async (a: ReceiverAction): Promise<ReceiverAction[]> => {
    switch (a.kind) {
      case 'send': {
        const w = await writeChunk(stream, a.bytes);
        return w.ok ? [] : m.handleEof();
      }
      case 'open': {
        const o: Offer = a.offer;
        const q = await deps.received.quota.reserve(stream.remoteAddr, o.size);
        if (!q.ok) return m.handleFailed(refusalOf(q.error));
        reservation = q.value;
        const p = await deps.partials.open({ addr: stream.remoteAddr, nodeId: stream.remoteNodeId, hostname: fromHostname }, o);
        if (!p.ok) {
          reservation.release();
          reservation = null;
          return m.handleFailed(refusalOf(p.error));
        }
        partial = p.value;
        onTakeOver(partial, () => stream.destroy());
        log.info({ name: o.name, bytes: o.size, resume_from: partial.offset }, partial.offset > 0 ? 'transfer resumed' : 'transfer started');
        return m.handleOpened(partial.offset);
      }
      case 'write': {
        const w = await partial!.append(a.data);
        return w.ok ? m.handleWritten(a.offset + a.data.length) : m.handleFailed(refusalOf(w.error));
      }
      case 'checkpoint': {
        // In the background: the fsync must not stop us reading the stream (the sender's window would drain).
        // Its outcome goes through the same serial queue as everything else.
        const p = partial!;
        checkpointing = p.checkpoint(a.offset).then((c) => {
          if (p !== partial) return; // released or published meanwhile
          return enqueue(c.ok ? m.handleCheckpointed(c.value) : m.handleFailed(refusalOf(c.error)));
        });
        return [];
      }
      case 'digest':
        // The machine asks for the digest only once no checkpoint is in flight.
        return m.handleDigest(partial!.digest());
      case 'publish': {
        const o = m.offer!;
        const p = partial!;
        const d = await p.detach();
        if (!d.ok) return m.handleFailed(refusalOf(d.error));
        const pub = await deps.received.publish(p.path, { requestedName: o.name, from: stream.remoteAddr, fromHostname, sha256: o.sha256, size: o.size });
        if (!pub.ok) {
          await fsp.unlink(p.path).catch(() => undefined);
          reservation?.release();
          return m.handleFailed(refusalOf(pub.error));
        }
        reservation?.commit();
        partial = null;
        log.info({ name: pub.value.name, bytes: o.size, sha256: o.sha256 }, 'file saved');
        deps.onFile?.(pub.value);
        return m.handlePublished({ name: pub.value.name, size: o.size, sha256: o.sha256 });
      }
      case 'discard':
        log.warn({ name: m.offer?.name }, 'received file does not match its SHA-256; discarded');
        await partial?.discard();
        partial = null;
        reservation?.release();
        return [];
      case 'release':
        await partial?.release();
        partial = null;
        reservation?.release();
        return [];
      case 'close':
        isClosed = true;
        if (a.error !== null) log.info({ code: a.error.code, err: a.error.message }, 'transfer ended');
        closeStream(stream);
        return [];
    }
  };
  const run = async (actions: ReceiverAction[]): Promise<void> => {
    const queue = [...actions];
    while (queue.length > 0) queue.unshift(...(await exec(queue.shift()!)));
  };
  // One action at a time, whether it comes from the stream or from a background checkpoint.
  let chain: Promise<void> = Promise.resolve();
  let checkpointing: Promise<unknown> = Promise.resolve();
  const enqueue = (actions: ReceiverAction[]): Promise<void> => {
    chain = chain.then(() => run(actions));
    return chain;
  };

  try {
    await enqueue(m.handleBytes(header, nowUs()));
    while (!isClosed) {
      const deadline = m.pollTimeout();
      const r = await readOrTimeout(reader, deadline === null ? null : Math.max(0, (deadline - nowUs()) / 1000));
      if (r === 'timeout') {
        await enqueue(m.handleTimeout(nowUs()));
        continue;
      }
      if (!r.ok || r.value === null) {
        await checkpointing.catch(() => undefined);
        await enqueue(m.handleEof());
        break;
      }
      await enqueue(m.handleBytes(r.value, nowUs()));
    }
    await checkpointing.catch(() => undefined);
    await chain;
  } finally {
    // Whatever happened (a bug included), the partial is let go so a retry can resume it.
    if (partial !== null) await (partial as PartialFile).release();
    (reservation as Reservation | null)?.release();
    if (!isClosed) stream.destroy();
  }
}

const READ_MAX_BYTES = XFER_MAX_FRAME_PAYLOAD_BYTES;

async function readOrTimeout(reader: StreamReader, ms: number | null): Promise<Result<Buffer | null> | 'timeout'> {
  const read = reader.readSome(READ_MAX_BYTES);
  if (ms === null) return read;
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  try {
    return await Promise.race([read, t]);
  } finally {
    clearTimeout(timer);
  }
}

// --------------------------------------------------------------------------------------------- sender

export interface ResumableSendOptions {
  timeoutMs?: number;
  /**
   * Keep redialling a transfer cut after the receiver accepted it, for this long without progress (default 0:
   * report the cut at once — the error's detail says where it stopped, and the next send of the same file resumes).
   */
  retryForMs?: number;
  logger?: Logger;
  /** Cap the sending rate at this many bytes per second (pilotctl send-file --limit-rate); absent = no cap. */
  rateBytesPerSec?: number;
  /** Test hooks: chunk and window sizes. */
  chunkBytes?: number;
  windowBytes?: number;
}

export interface ResumableSendReport {
  target: string;
  name: string;
  filename: string;
  bytes: number;
  sha256: string;
  ack: boolean;
  ack_text: string | null;
  /** 'resumable' (chunked, acknowledged) or 'single-frame' (an original receiver: one FILE frame). */
  protocol: 'resumable' | 'single-frame';
  /** Bytes the receiver already had when this send started (0 = a new transfer). */
  resumed_from: number;
  /** Connections used (1 = never cut). */
  attempts: number;
  /** The offset the receiver accepted on each connection that got that far: [0, 52428800] = cut once, resumed at 50 MiB. */
  resume_offsets: number[];
  /** The name the receiver stored it under in its received/. */
  stored_as: string | null;
  duration_ms: number;
}

/** The single-frame fallback (data-exchange.ts's sendFile), injected to keep the import one-way. */
export type SingleFrameSend = (host: ServiceHost, peer: PeerRef, path: string, progress?: ProgressFn, opts?: { timeoutMs?: number }) => Promise<
  Result<{ target: string; name: string; filename: string; bytes: number; sha256: string; ack: boolean; ack_text: string | null }>
>;

/** SHA-256 of a file, streamed. */
async function hashFile(fh: FileHandle, size: number): Promise<Result<string>> {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1024 * 1024);
  let pos = 0;
  try {
    while (pos < size) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
      if (bytesRead === 0) return err('internal', 'file shrank while hashing');
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  } catch (e) {
    return err('internal', `read file: ${messageOf(e)}`, { cause: e });
  }
  return ok(h.digest('hex'));
}

type AttemptOutcome =
  | { kind: 'done'; storedAs: string }
  | { kind: 'legacy' }
  | { kind: 'fail'; error: PilotError; retryable: boolean; wasAccepted: boolean };

/**
 * Send a file with the resumable protocol (any size), or as one FILE frame to an original receiver (≤ 16 MiB).
 * `progress(bytesDone, bytesTotal)` as data goes out. Errors: not_found (no such file), invalid_argument (not a
 * regular file; too large for an original receiver), quota_exceeded / hash_mismatch (refused by the receiver),
 * timeout, connection_failed (after retries), dial errors, internal (read error). Does I/O.
 */
export async function sendFileResumable(
  host: ServiceHost,
  peer: PeerRef,
  path: string,
  singleFrame: SingleFrameSend,
  progress?: ProgressFn,
  opts: ResumableSendOptions = {},
): Promise<Result<ResumableSendReport>> {
  const startMs = Date.now();
  const opened = await openFileToSend(path);
  if (!opened.ok) return opened;
  const { fh } = opened.value;
  try {
    const size = opened.value.size;
    const name = basename(path);
    const sha = await hashFile(fh, size);
    if (!sha.ok) return sha;
    const file = { name, size, sha256: sha.value };
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const retryForMs = opts.retryForMs ?? 0;
    let attempts = 0;
    let resumedFrom: number | null = null;
    const resumeOffsets: number[] = [];
    let target = typeof peer === 'string' ? peer : String(peer);
    let lastProgressMs = Date.now();
    let bestAcked = -1;
    let backoffMs = 250;
    for (;;) {
      attempts++;
      const dialed = await host.dial(peer, PORT_DATAEXCHANGE, { timeoutMs });
      let outcome: AttemptOutcome;
      if (!dialed.ok) {
        outcome = { kind: 'fail', error: dialed.error, retryable: true, wasAccepted: false };
      } else {
        guardStream(dialed.value);
        target = dialed.value.remoteAddr;
        const a = await sendAttempt(dialed.value, fh, file, progress, opts);
        outcome = a.outcome;
        if (resumedFrom === null && a.accepted !== null) resumedFrom = a.accepted;
        if (a.accepted !== null) resumeOffsets.push(a.accepted);
        if (a.acked > bestAcked) {
          bestAcked = a.acked;
          lastProgressMs = Date.now();
        }
      }
      if (outcome.kind === 'done') {
        return ok({
          target,
          name,
          filename: name,
          bytes: size,
          sha256: file.sha256,
          ack: true,
          ack_text: `ACK FILE ${size} bytes`,
          protocol: 'resumable',
          resumed_from: resumedFrom ?? 0,
          attempts,
          resume_offsets: resumeOffsets,
          stored_as: outcome.storedAs,
          duration_ms: Date.now() - startMs,
        });
      }
      if (outcome.kind === 'legacy') {
        const r = await singleFrame(host, peer, path, progress, { timeoutMs });
        if (!r.ok && r.error.code === 'invalid_argument' && size > SINGLE_FRAME_MAX_BYTES) {
          return err('invalid_argument', `${target} runs a node without resumable transfers: it takes files of at most 16 MiB in one frame, this one is ${size} bytes`, {
            hint: 'split the file (e.g. `split -b 15M`), or ask the receiver to upgrade to a node with resumable send-file',
            detail: { bytes: size, max_bytes: SINGLE_FRAME_MAX_BYTES, protocol: 'single-frame' },
          });
        }
        if (!r.ok) return r;
        return ok({ ...r.value, protocol: 'single-frame', resumed_from: 0, attempts: attempts + 1, resume_offsets: [], stored_as: null, duration_ms: Date.now() - startMs });
      }
      // A first connection that never got an answer is an ordinary dial/peer failure: report it now.
      const hasStarted = bestAcked >= 0 || resumedFrom !== null;
      if (!outcome.retryable || !hasStarted || retryForMs <= 0 || Date.now() - lastProgressMs > retryForMs) {
        const e = outcome.error;
        const isResumable = outcome.retryable && hasStarted;
        return err(e.code, isResumable ? `transfer cut after ${Math.max(0, bestAcked)} of ${size} bytes: ${e.message}` : e.message, {
          hint: isResumable
            ? `send the same file again (pilotctl send-file ${String(peer)} ${path}): it resumes at the receiver's last checkpoint; --retry 5m keeps retrying by itself`
            : e.hint,
          detail: { ...e.detail, bytes_acknowledged: Math.max(0, bestAcked), bytes_total: size, attempts, resume_offsets: resumeOffsets, resumable: isResumable },
        });
      }
      opts.logger?.info({ err: outcome.error.message, attempt: attempts, acked: bestAcked }, 'transfer interrupted; resuming');
      const st2 = await fh.stat().catch(() => null);
      if (st2 === null || st2.size !== size || st2.mtimeMs !== opened.value.mtimeMs) {
        return err('invalid_argument', `file changed while sending: ${path}`, { hint: 'send it again once it stops changing' });
      }
      await new Promise((r) => setTimeout(r, backoffMs));
      backoffMs = Math.min(backoffMs * 2, 5000);
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** One connection's worth of the transfer. */
async function sendAttempt(
  stream: PilotStream,
  fh: FileHandle,
  file: { name: string; size: number; sha256: string },
  progress: ProgressFn | undefined,
  opts: ResumableSendOptions,
): Promise<{ outcome: AttemptOutcome; accepted: number | null; acked: number }> {
  const mk = SenderMachine.create(file, nowUs(), { chunkBytes: opts.chunkBytes ?? XFER_CHUNK_BYTES, windowBytes: opts.windowBytes, rateBytesPerSec: opts.rateBytesPerSec });
  if (!mk.ok) return { outcome: { kind: 'fail', error: mk.error, retryable: false, wasAccepted: false }, accepted: null, acked: -1 };
  const m = mk.value;
  const reader = new StreamReader(stream);
  let outcome: AttemptOutcome | null = null;
  let accepted: number | null = null;
  let wake: (() => void) | null = null;
  const poke = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  const apply = (actions: SenderAction[]): void => {
    for (const a of actions) {
      if (outcome !== null) break;
      if (a.kind === 'legacy') outcome = { kind: 'legacy' };
      else if (a.kind === 'done') outcome = { kind: 'done', storedAs: a.done.name };
      else if (a.kind === 'fail') outcome = { kind: 'fail', error: a.error, retryable: a.retryable, wasAccepted: accepted !== null };
    }
    if (accepted === null && m.state !== 'offered') accepted = m.resumedFrom;
    poke();
  };

  const readLoop = (async (): Promise<void> => {
    while (outcome === null) {
      const r = await reader.readSome(XFER_MAX_FRAME_PAYLOAD_BYTES);
      if (!r.ok || r.value === null) {
        apply(m.handleEof());
        return;
      }
      apply(m.handleBytes(r.value, nowUs()));
    }
  })();

  // The watchdog: a write blocked on a dead receiver (no reset comes from a killed daemon) is ended by the
  // machine's idle timeout, which destroys the stream and so settles the write.
  const watchdog = setInterval(() => {
    if (outcome !== null) return;
    apply(m.handleTimeout(nowUs()));
    if (outcome !== null) stream.destroy();
  }, 1000);
  const w0 = await writeChunk(stream, m.offerBytes);
  if (!w0.ok) apply(m.handleEof());
  while (outcome === null) {
    const next = m.pollNext(nowUs());
    if (next === null) {
      // The receiver's deadline, or sooner the pacing of --limit-rate.
      const idle = m.pollTimeout();
      const paced = m.pacedUntil();
      const deadline = idle === null ? paced : paced === null ? idle : Math.min(idle, paced);
      const waitMs = deadline === null ? 1000 : Math.max(1, (deadline - nowUs()) / 1000);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, waitMs);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      if (outcome === null) apply(m.handleTimeout(nowUs()));
      continue;
    }
    if (next.kind === 'end') {
      const w = await writeChunk(stream, next.bytes);
      if (!w.ok) apply(m.handleEof());
      continue;
    }
    // A fresh buffer per chunk: the stream may keep it queued after write() returns.
    const buf = Buffer.allocUnsafe(next.length);
    let n = 0;
    try {
      while (n < next.length) {
        const { bytesRead } = await fh.read(buf, n, next.length - n, next.offset + n);
        if (bytesRead === 0) break;
        n += bytesRead;
      }
    } catch (e) {
      outcome = { kind: 'fail', error: { code: 'internal', message: `read file: ${messageOf(e)}` }, retryable: false, wasAccepted: true };
      break;
    }
    if (n < next.length) {
      outcome = { kind: 'fail', error: { code: 'invalid_argument', message: 'file shrank while sending', hint: 'send it again once it stops changing' }, retryable: false, wasAccepted: true };
      break;
    }
    const w1 = await writeChunk(stream, next.header);
    const w2 = w1.ok ? await writeChunk(stream, buf) : w1;
    if (!w2.ok) {
      apply(m.handleEof());
      break;
    }
    progress?.(m.bytesSent, file.size);
  }
  clearInterval(watchdog);
  const o = outcome as AttemptOutcome | null;
  if (o !== null && o.kind === 'done') closeStream(stream);
  else if (o !== null && o.kind === 'legacy') closeStream(stream);
  else stream.destroy();
  await readLoop.catch(() => undefined);
  if (o?.kind === 'done') progress?.(file.size, file.size);
  return {
    outcome: o ?? { kind: 'fail', error: { code: 'internal', message: 'transfer ended without an outcome' }, retryable: true, wasAccepted: accepted !== null },
    accepted,
    acked: accepted === null ? -1 : m.bytesAcked,
  };
}
