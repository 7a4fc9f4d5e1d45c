// Port 1000 ("stdio"). The original binds nothing there: the daemon's built-in services are echo,
// dataexchange, eventstream and tasksubmit only (TeoSlayer/pilotprotocol, pkg/daemon/services.go,
// startBuiltinServices). 1000 is merely the default port of `pilotctl connect`, which — like `send` —
// dials, writes one message, prints the first chunk that comes back (one Read of up to 65535 bytes)
// and closes; `pilotctl recv <port>` binds a port, accepts `count` connections and reads one chunk from
// each (cmd/pilotctl/main.go, cmdConnect/cmdSend/cmdRecv). These two helpers reproduce those
// exchanges and their JSON fields for whoever serves those commands; no framing is involved.
import { err, ok, type Result } from '../core/result.js';
import type { PeerRef, ServiceHost } from '../node/api.js';
import { closeStream, guardStream, StreamReader, withTimeout, writeChunk } from './stream-io.js';
import { PORT_STDIO } from '../wire/address.js';

export { PORT_STDIO };
/** The original reads at most this much as "the response". */
export const MAX_STDIO_READ_BYTES = 65535;
export const DEFAULT_STDIO_TIMEOUT_MS = 30_000;

export interface SendAndReadReport {
  target: string;
  port: number;
  sent: string;
  /** First chunk the peer wrote back ('' if it closed without writing). */
  response: string;
}

/**
 * `pilotctl connect|send`: dial `peer:port`, write `data`, return the first chunk of the reply.
 * Errors: dial errors (connection_failed …), timeout (no reply in time), connection_failed. Does I/O.
 */
export async function sendAndRead(
  host: ServiceHost,
  peer: PeerRef,
  port: number,
  data: Uint8Array,
  opts: { timeoutMs?: number } = {},
): Promise<Result<SendAndReadReport>> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_STDIO_TIMEOUT_MS;
  const d = await host.dial(peer, port, { timeoutMs });
  if (!d.ok) return d;
  const stream = d.value;
  guardStream(stream);
  try {
    const w = await writeChunk(stream, data);
    if (!w.ok) return err('connection_failed', `write failed: ${w.error.message}`);
    const reader = new StreamReader(stream);
    const r = await withTimeout(reader.readSome(MAX_STDIO_READ_BYTES), timeoutMs, 'read', () => stream.destroy());
    if (!r.ok) {
      if (r.error.code === 'timeout') {
        return err('timeout', `no response within ${timeoutMs} ms`, {
          hint: 'increase with --timeout, or check if the target is listening on that port',
        });
      }
      return err('connection_failed', `read failed: ${r.error.message}`);
    }
    return ok({
      target: stream.remoteAddr,
      port,
      sent: Buffer.from(data).toString('utf8'),
      response: r.value === null ? '' : r.value.toString('utf8'),
    });
  } finally {
    closeStream(stream);
  }
}

export interface RecvMessage {
  seq: number;
  port: number;
  data?: string;
  bytes?: number;
  error?: string;
}

export interface RecvReport {
  messages: RecvMessage[];
  timeout: boolean;
}

/**
 * `pilotctl recv <port>`: bind `port`, accept up to `count` connections, read one chunk from each.
 * Stops early with timeout:true when `timeoutMs` (for the whole run) passes. Errors: connection_failed
 * when the port cannot be bound. Does I/O.
 */
export async function receiveMessages(
  host: ServiceHost,
  port: number,
  opts: { count?: number; timeoutMs?: number } = {},
): Promise<Result<RecvReport>> {
  const count = opts.count ?? 1;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_STDIO_TIMEOUT_MS;
  const ln = host.listen(port);
  if (!ln.ok) return err('connection_failed', `listen: ${ln.error.message}`, { cause: ln.error });
  const listener = ln.value;
  const messages: RecvMessage[] = [];
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    for (let seq = 0; seq < count; seq++) {
      const next = await Promise.race([listener.accept(), deadline]);
      if (next === 'timeout') return ok({ messages, timeout: true });
      if (next === null) return err('connection_failed', 'accept error');
      const stream = next;
      guardStream(stream);
      const reader = new StreamReader(stream);
      const r = await Promise.race([reader.readSome(MAX_STDIO_READ_BYTES), deadline]);
      if (r === 'timeout') {
        stream.destroy();
        return ok({ messages, timeout: true });
      }
      if (!r.ok) messages.push({ seq, port, error: r.error.message });
      else if (r.value === null) messages.push({ seq, port, error: 'EOF' });
      else messages.push({ seq, port, data: r.value.toString('utf8'), bytes: r.value.length });
      closeStream(stream);
    }
    return ok({ messages, timeout: false });
  } finally {
    clearTimeout(timer);
    listener.close();
  }
}
