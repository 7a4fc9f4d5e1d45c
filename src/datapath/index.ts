// Datapath entry: native addon when it loads, else node:dgram with one log line saying why.
import { type Logger, type Result } from '../core/index.js';
import { openDgramDatapath } from './dgram.js';
import { loadNative, openNativeDatapath } from './native.js';
import type { Datapath } from './types.js';

export * from './types.js';
export { PacketBatch, ipv4ToU32, u32ToIpv4 } from './packet-batch.js';
export { createAeadBatch, createJsAead, NOISE_DATA_LAYOUT, AEAD_TAG_BYTES, AEAD_KEY_BYTES, type AeadBatchOptions } from './aead.js';
export { openDgramDatapath } from './dgram.js';
export { openNativeDatapath, loadNative } from './native.js';

export interface OpenDatapathOptions {
  /** IPv4 literal ('0.0.0.0', '127.0.0.1') or 'localhost'. */
  host: string;
  /** 0 = ephemeral; the bound port is in localAddress. */
  port: number;
  logger: Logger;
  /** Default true. PILOT_NATIVE=0 in the environment forces node:dgram. */
  preferNative?: boolean;
  recvBufferBytes?: number;
  sendBufferBytes?: number;
}

let hasLoggedFallback = false;

/** Open a UDP datapath. Bind failures → invalid_argument (port in use, address not local, privileged
 * port) or connection_failed; they are not retried on the other implementation. Does I/O. */
let lastFallbackReason: string | null = null;

/** Why the last openDatapath used node:dgram (PILOT_NATIVE=0, the addon's load error), or null. */
export function datapathFallbackReason(): string | null {
  return lastFallbackReason;
}

export async function openDatapath(opts: OpenDatapathOptions): Promise<Result<Datapath>> {
  let why: string | null = null;
  if (process.env.PILOT_NATIVE === '0') why = 'PILOT_NATIVE=0';
  else if (opts.preferNative === false) why = null;
  else {
    const lib = await loadNative();
    if (lib.ok) return openNativeDatapath(opts);
    why = lib.error.message;
  }
  lastFallbackReason = why;
  if (why !== null) {
    const level = hasLoggedFallback ? 'debug' : 'info';
    hasLoggedFallback = true;
    opts.logger[level]({ reason: why }, `datapath: using node:dgram (${why})`);
  }
  return openDgramDatapath(opts);
}
