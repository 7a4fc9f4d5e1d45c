// In-memory ServiceHost test double: hosts on one MemoryNetwork dial each other's listeners and get a
// pair of linked Duplex streams. Semantics mirror PilotDuplex (src/node/pilot-stream.ts): end() = FIN
// (the peer reads EOF, half-open allowed), destroy() before an orderly close = RST (the peer is
// destroyed with an error), a small highWaterMark so backpressure actually happens.
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { err, ok, type Result } from '../../../src/core/result.js';
import type { PilotStream, PortListener, ServiceHost } from '../../../src/node/api.js';
import { PORT_DATAEXCHANGE } from '../../../src/wire/address.js';
import { FRAME_TYPE_TEXT } from '../../../src/services/data-exchange-codec.js';
import { StreamReader, writeChunk } from '../../../src/services/stream-io.js';

export class MemoryStream extends Duplex implements PilotStream {
  peer!: MemoryStream;
  /** A peer write waiting for us to read (our buffer was full). */
  private waitingWriter: ((e?: Error | null) => void) | null = null;
  bytesWritten = 0;

  constructor(
    readonly remoteAddr: string,
    readonly remoteNodeId: number,
    readonly remotePort: number,
    readonly localPort: number,
    highWaterMark: number,
  ) {
    super({ allowHalfOpen: true, highWaterMark });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    const p = this.peer;
    if (p.destroyed || p.readableEnded) return cb(new Error('connection reset by peer'));
    this.bytesWritten += chunk.length;
    // Copy: a transport owns the bytes once written; callers may reuse their buffer.
    if (p.push(Buffer.from(chunk))) cb();
    else p.waitingWriter = cb;
  }

  override _read(): void {
    const w = this.waitingWriter;
    if (w) {
      this.waitingWriter = null;
      w();
    }
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null);
    cb();
  }

  override _destroy(error: Error | null, cb: (e: Error | null) => void): void {
    const w = this.waitingWriter;
    this.waitingWriter = null;
    w?.(new Error('stream destroyed'));
    const isOrderly = this.writableFinished && this.readableEnded;
    if (!isOrderly && !this.peer.destroyed) {
      const peer = this.peer;
      setImmediate(() => peer.destroy(new Error('connection reset by peer')));
    }
    cb(error);
  }
}

class MemoryListener implements PortListener {
  private queue: PilotStream[] = [];
  private waiters: ((s: PilotStream | null) => void)[] = [];
  isClosed = false;

  constructor(
    readonly port: number,
    private readonly onClose: () => void,
  ) {}

  deliver(s: PilotStream): boolean {
    if (this.isClosed) return false;
    const w = this.waiters.shift();
    if (w) w(s);
    else this.queue.push(s);
    return true;
  }

  accept(): Promise<PilotStream | null> {
    const s = this.queue.shift();
    if (s) return Promise.resolve(s);
    if (this.isClosed) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const w of this.waiters.splice(0)) w(null);
    for (const s of this.queue.splice(0)) s.destroy();
    this.onClose();
  }
}

export function addrOf(nodeId: number): string {
  const hex = nodeId.toString(16).padStart(8, '0');
  return `0:0000.${hex.slice(0, 4)}.${hex.slice(4)}`;
}

export class MemoryHost implements ServiceHost {
  readonly address: string;
  readonly listeners = new Map<number, MemoryListener>();
  private nextEphemeralPort = 49152;

  constructor(
    private readonly net: MemoryNetwork,
    readonly nodeId: number,
    readonly home: string,
    readonly hostname: string | null,
  ) {
    this.address = addrOf(nodeId);
  }

  listen(port: number): Result<PortListener> {
    if (this.listeners.has(port)) return err('already_exists', `port ${port} already bound`);
    const l = new MemoryListener(port, () => this.listeners.delete(port));
    this.listeners.set(port, l);
    return ok(l);
  }

  async dial(peer: string, port: number, _opts?: { timeoutMs?: number }): Promise<Result<PilotStream>> {
    await new Promise((r) => setImmediate(r));
    const target = this.net.resolve(peer);
    if (!target) return err('not_found', `no such peer: ${peer}`);
    const l = target.listeners.get(port);
    if (!l) return err('connection_failed', `connection refused: ${peer} port ${port}`);
    const localPort = this.nextEphemeralPort++;
    const hwm = this.net.highWaterMark;
    const mine = new MemoryStream(target.address, target.nodeId, port, localPort, hwm);
    const theirs = new MemoryStream(this.address, this.nodeId, localPort, port, hwm);
    mine.peer = theirs;
    theirs.peer = mine;
    if (!l.deliver(theirs)) return err('connection_failed', `connection refused: ${peer} port ${port}`);
    this.net.dials.push({ from: this.nodeId, to: target.nodeId, port, stream: mine });
    return ok(mine);
  }

  hostnameOf(nodeId: number): string | null {
    return this.net.byId(nodeId)?.hostname ?? null;
  }
}

export class MemoryNetwork {
  private readonly hosts: MemoryHost[] = [];
  private readonly homes: string[] = [];
  readonly dials: { from: number; to: number; port: number; stream: MemoryStream }[] = [];

  constructor(readonly highWaterMark = 16 * 1024) {}

  addHost(nodeId: number, hostname: string | null = null): MemoryHost {
    const home = mkdtempSync(join(tmpdir(), `pilot-svc-${nodeId}-`));
    this.homes.push(home);
    const h = new MemoryHost(this, nodeId, home, hostname);
    this.hosts.push(h);
    return h;
  }

  byId(nodeId: number): MemoryHost | undefined {
    return this.hosts.find((h) => h.nodeId === nodeId);
  }

  resolve(peer: string): MemoryHost | undefined {
    return this.hosts.find((h) => h.address === peer || h.hostname === peer || String(h.nodeId) === peer);
  }

  /** Remove the temp homes. */
  cleanup(): void {
    for (const h of this.homes) rmSync(h, { recursive: true, force: true });
  }
}

/** Poll `cond` until true (or fail after `timeoutMs`). */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Write raw bytes on a fresh 1001 connection and collect the ACK frames' text. */
export async function rawExchange(client: MemoryHost, bytes: Uint8Array, acks: number): Promise<string[]> {
  const d = await client.dial('server', PORT_DATAEXCHANGE);
  assert.ok(d.ok);
  const s = d.value;
  s.on('error', () => {});
  const reader = new StreamReader(s);
  assert.ok((await writeChunk(s, bytes)).ok);
  const out: string[] = [];
  for (let i = 0; i < acks; i++) {
    const h = await reader.readExactStrict(8);
    assert.ok(h.ok, 'ack header');
    assert.equal(h.value.readUInt32BE(0), FRAME_TYPE_TEXT);
    const p = await reader.readExactStrict(h.value.readUInt32BE(4));
    assert.ok(p.ok);
    out.push(p.value.toString());
  }
  s.end();
  return out;
}
