// The native datapath: wraps the pilot-datapath addon (native/, raw N-API). The only importer of
// native/index.js. Everything here returns values; the addon itself never throws and answers -errno.
//
// Receive path: the addon's reader thread fills a ring of RECV_SLOTS slots in one JS-owned buffer
// (recvmmsg + UDP_GRO, split by segment size) and calls back once per slot; the slot goes back to the
// reader when the handler returns, so handlers must copy what they keep. With tunnel keys installed
// (tunnelKeys), the reader has already opened the PND1 frames it holds keys for (batch.status), and
// sendBatch seals the packets marked in batch.keys in the same call that sends them.
import { readFileSync } from 'node:fs';
import { err, ok, type Logger, type Result } from '../core/index.js';
import type { DataCipherSupport } from '../crypto/data-cipher.js';
import { bindError, errnoName } from './errors.js';
import { PacketBatch, ipv4ToU32 } from './packet-batch.js';
import {
  META_STRIDE,
  NOISE_DATA_LAYOUT,
  type AeadAlgorithm,
  type AeadBatch,
  type AeadLayout,
  type Datapath,
  type DatapathStats,
  type RecvBatch,
  type SendBatch,
  type TunnelKeyTable,
} from './types.js';
import type { NativeAeadHandle, NativeBinding, NativeSocketHandle } from '../../native/index.js';

const FEATURE_GSO = 1;
const FEATURE_GRO = 2;
const RECV_SLOTS = 4;
const RECV_MSGS_PER_SLOT = 32;
/** 64 KiB per datagram: a GRO-coalesced message is up to 64 KiB, and v0.5 peers send >2 KiB frames. */
const RECV_ELEM_BYTES = 65536;
/** GRO coalesces at most 64 segments per message. */
const RECV_META_PER_SLOT = RECV_MSGS_PER_SLOT * 64;
const DEFAULT_BUFFER_BYTES = 8 * 1024 * 1024;

type Loaded = { ok: true; binding: NativeBinding } | { ok: false; reason: string; cause?: unknown };
let loaded: Loaded | null = null;

/** Load the addon once per process. Missing build, wrong platform or a broken .node → not_found. */
export async function loadNative(): Promise<Result<NativeBinding>> {
  if (loaded === null) {
    try {
      // Path relative to this file: src/datapath (tsx) or dist/src/datapath (compiled) → <root>/native.
      const mod = (await importFirst([
        new URL('../../native/index.js', import.meta.url).href,
        new URL('../../../native/index.js', import.meta.url).href,
      ])) as { loadNativeBinding: () => Loaded } | null;
      loaded = mod ? mod.loadNativeBinding() : { ok: false, reason: 'native/index.js not found' };
      // An addon built from an older checkout has other call signatures: refuse it rather than misuse it.
      if (loaded.ok && typeof loaded.binding.udpSetSession !== 'function') loaded = { ok: false, reason: 'native addon is out of date (no udpSetSession)' };
    } catch (cause) {
      loaded = { ok: false, reason: `native loader failed: ${String(cause)}`, cause };
    }
  }
  if (!loaded.ok) return err('not_found', loaded.reason, { hint: 'build it with `npm run build:native` (needs cargo and libsodium-dev)', cause: loaded.cause });
  return ok(loaded.binding);
}

async function importFirst(urls: string[]): Promise<unknown> {
  const { existsSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  for (const u of urls) if (existsSync(fileURLToPath(u))) return import(u);
  return null;
}

export interface NativeDatapathOptions {
  host: string;
  port: number;
  logger: Logger;
  recvBufferBytes?: number;
  sendBufferBytes?: number;
  /** UDP GSO for same-size runs to one peer (default true; drops out by itself when the kernel refuses). */
  gso?: boolean;
  /** UDP_GRO on receive (default true). */
  gro?: boolean;
}

class NativeDatapath implements Datapath {
  readonly kind = 'native' as const;
  readonly localAddress: { ip: string; port: number };
  private handler: ((batch: RecvBatch) => void) | null = null;
  private isClosed = false;
  private slots: PacketBatch[] = [];
  private readonly one = new PacketBatch(1, 0);
  private readonly statsOut = new Float64Array(10);
  private recvErrno = 0;
  private isRefd = true;
  private hasLoggedKeyError = false;
  readonly tunnelKeys: TunnelKeyTable;

  constructor(
    private readonly b: NativeBinding,
    private readonly h: NativeSocketHandle,
    ip: string,
    private readonly logger: Logger,
  ) {
    this.localAddress = { ip, port: b.udpLocalPort(h) };
    this.tunnelKeys = {
      install: (localIndex, sendKey, recvKey, cipher = 'chacha20-poly1305') =>
        !this.isClosed && b.udpSetSession(h, localIndex, sendKey, recvKey, ALG_IDS[cipher]) === 0,
      remove: (localIndex) => {
        if (!this.isClosed) b.udpRemoveSession(h, localIndex);
      },
      dataCiphers: nativeDataCiphers(b),
    };
  }

  send(data: Uint8Array, ip: string, port: number): number {
    const ipU32 = ipv4ToU32(ip);
    if (this.isClosed || ipU32 < 0) return 0;
    const one = this.one;
    one.buf = data;
    one.reset();
    one.add(0, data.length, ipU32, port);
    const r = this.b.udpSend(this.h, data, one.meta, 1);
    return r > 0 ? r : 0;
  }

  routeMtu(ip: string, port: number): number | null {
    const ipU32 = ipv4ToU32(ip);
    if (this.isClosed || ipU32 < 0 || typeof this.b.routeMtu !== 'function') return null;
    const r = this.b.routeMtu(ipU32, port);
    return r > 0 ? r : null;
  }

  sendBatch(batch: SendBatch): number {
    if (this.isClosed || batch.count === 0) return 0;
    const r = this.b.udpSend(this.h, batch.buf, batch.meta, batch.count, batch.keys ?? undefined);
    if (r < 0 && errnoName(r) === 'ENOKEY' && !this.hasLoggedKeyError) {
      this.hasLoggedKeyError = true;
      this.logger.error({ count: batch.count }, 'datapath(native): batch names a session key the socket does not hold; nothing sent (bug)');
    }
    return r > 0 ? r : 0;
  }

  onReceive(handler: (batch: RecvBatch) => void): void {
    const first = this.handler === null;
    this.handler = handler;
    if (!first || this.isClosed) return;
    const slotBytes = RECV_MSGS_PER_SLOT * RECV_ELEM_BYTES;
    const buf = new Uint8Array(RECV_SLOTS * slotBytes);
    const meta = new Uint32Array(RECV_SLOTS * RECV_META_PER_SLOT * META_STRIDE);
    const status = new Uint8Array(RECV_SLOTS * RECV_META_PER_SLOT);
    for (let s = 0; s < RECV_SLOTS; s++) {
      const slot = new PacketBatch(
        buf.subarray(s * slotBytes, (s + 1) * slotBytes),
        meta.subarray(s * RECV_META_PER_SLOT * META_STRIDE, (s + 1) * RECV_META_PER_SLOT * META_STRIDE),
      );
      slot.status = status.subarray(s * RECV_META_PER_SLOT, (s + 1) * RECV_META_PER_SLOT);
      this.slots.push(slot);
    }
    const r = this.b.udpStartRecv(this.h, buf, meta, status, RECV_SLOTS, RECV_MSGS_PER_SLOT, RECV_ELEM_BYTES, RECV_META_PER_SLOT, this.onBatch);
    if (r < 0) this.logger.error({ errno: errnoName(r) }, 'datapath(native): cannot start receiving');
    else if (!this.isRefd) this.b.udpRef(this.h, false);
  }

  private readonly onBatch = (slot: number, count: number, errno: number): void => {
    if (errno !== 0) {
      if (errno !== this.recvErrno) this.logger.warn({ errno: errnoName(errno) }, 'datapath(native): receive error');
      this.recvErrno = errno;
      return;
    }
    const batch = this.slots[slot];
    if (batch === undefined || this.handler === null || this.isClosed) return;
    batch.count = count;
    this.handler(batch);
  };

  unref(): void {
    this.isRefd = false;
    this.b.udpRef(this.h, false);
  }

  ref(): void {
    this.isRefd = true;
    this.b.udpRef(this.h, true);
  }

  close(): Promise<void> {
    if (!this.isClosed) {
      this.isClosed = true;
      // Joins the reader thread: it never waits on JS, so this returns promptly.
      this.b.udpClose(this.h);
    }
    return Promise.resolve();
  }

  stats(): DatapathStats {
    const o = this.statsOut;
    this.b.udpStats(this.h, o); // counters stay readable after close
    return {
      txPackets: o[0]!,
      txBytes: o[1]!,
      txDropped: o[2]!,
      txGsoSends: o[3]!,
      rxPackets: o[4]!,
      rxBytes: o[5]!,
      rxBatches: o[6]!,
      rxDropped: o[7]!,
      lastError: o[8]! === 0 ? null : errnoName(o[8]!),
      gso: (o[9]! & FEATURE_GSO) !== 0,
      gro: (o[9]! & FEATURE_GRO) !== 0,
    };
  }
}

/** Bind a native UDP socket on host:port (IPv4 literal or 'localhost'). Bind errors → invalid_argument
 * (in use, not local, privileged) or connection_failed; a missing addon → not_found. Does I/O. */
export async function openNativeDatapath(opts: NativeDatapathOptions): Promise<Result<Datapath>> {
  const lib = await loadNative();
  if (!lib.ok) return lib;
  const b = lib.value;
  const host = opts.host === 'localhost' ? '127.0.0.1' : opts.host;
  const ipU32 = ipv4ToU32(host);
  if (ipU32 < 0) return err('invalid_argument', `not an IPv4 address: ${opts.host}`, { hint: 'use an IPv4 literal such as 0.0.0.0 or 127.0.0.1', detail: { host: opts.host } });
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) return err('invalid_argument', `bad UDP port ${opts.port}`, { detail: { port: opts.port } });
  const features = (opts.gso === false ? 0 : FEATURE_GSO) | (opts.gro === false ? 0 : FEATURE_GRO);
  const h = b.udpOpen(ipU32, opts.port, opts.recvBufferBytes ?? DEFAULT_BUFFER_BYTES, opts.sendBufferBytes ?? DEFAULT_BUFFER_BYTES, features);
  if (typeof h === 'number') return bindError(errnoName(h), host, opts.port);
  return ok(new NativeDatapath(b, h, host, opts.logger));
}

const ALG_IDS: Record<AeadAlgorithm, number> = { 'chacha20-poly1305': 1, 'aes-256-gcm': 2 };

/** The CPU has AES instructions (x86 AES-NI, ARMv8 AES): read once from /proc/cpuinfo; false elsewhere. */
let cpuAes: boolean | null = null;
export function hasHardwareAes(): boolean {
  if (cpuAes === null) {
    try {
      const info = readFileSync('/proc/cpuinfo', 'utf8');
      cpuAes = /^(flags|Features)\s*:.*\baes\b/m.test(info);
    } catch {
      cpuAes = false;
    }
  }
  return cpuAes;
}

/**
 * Which data ciphers beyond ChaCha20-Poly1305 the socket's key table runs: AES-256-GCM when the addon takes it
 * (udpSessionCiphers) and the CPU has AES instructions — a software AES is neither fast nor constant-time, so it
 * is never offered. PILOT_DATA_CIPHER=chacha20-poly1305 turns the offer off (comparisons, or a peer to debug).
 */
function nativeDataCiphers(b: NativeBinding): DataCipherSupport | null {
  if (process.env.PILOT_DATA_CIPHER === 'chacha20-poly1305') return null;
  if (typeof b.udpSessionCiphers !== 'function' || (b.udpSessionCiphers() & 2) === 0 || !hasHardwareAes()) return null;
  return {
    ciphers: ['aes-256-gcm'],
    create: (cipher, key) => {
      if (cipher !== 'aes-256-gcm') return null;
      const l = NOISE_DATA_LAYOUT;
      const h = b.aeadCreate(ALG_IDS[cipher], key, l.headerBytes, l.aadBytes, l.nonceOffset, l.nonceBytes);
      return typeof h === 'number' ? null : new NativeAead(b, h, cipher, l);
    },
  };
}

class NativeAead implements AeadBatch {
  readonly kind = 'native' as const;
  constructor(
    private readonly b: NativeBinding,
    private readonly h: NativeAeadHandle,
    readonly algorithm: AeadAlgorithm,
    readonly layout: Readonly<AeadLayout>,
  ) {}
  seal(buf: Uint8Array, meta: Uint32Array, count: number): number {
    const r = this.b.aeadSeal(this.h, buf, meta, count);
    return r < 0 ? -1 : r;
  }
  open(buf: Uint8Array, meta: Uint32Array, count: number, status: Uint8Array): number {
    const r = this.b.aeadOpen(this.h, buf, meta, count, status);
    return r < 0 ? 0 : r;
  }
  destroy(): void {
    this.b.aeadDestroy(this.h);
  }
}

/** Native batch AEAD (libsodium). not_found when the addon or the algorithm (AES-NI) is unavailable;
 * invalid_argument for a bad key or layout. */
export async function createNativeAead(algorithm: AeadAlgorithm, key: Uint8Array, layout: AeadLayout): Promise<Result<AeadBatch>> {
  const lib = await loadNative();
  if (!lib.ok) return lib;
  const b = lib.value;
  const alg = ALG_IDS[algorithm];
  if (typeof b.aeadAvailable !== 'function' || !b.aeadAvailable(alg)) return err('not_found', `native ${algorithm} unavailable on this CPU/build`);
  const h = b.aeadCreate(alg, key, layout.headerBytes, layout.aadBytes, layout.nonceOffset, layout.nonceBytes);
  if (typeof h === 'number') return err('invalid_argument', `bad AEAD key or layout (${errnoName(h)})`, { detail: { keyBytes: key.length, ...layout } });
  return ok(new NativeAead(b, h, algorithm, { ...layout }));
}
