// pilotctl send-file and received. JSON fields keep the original's (filename, bytes, destination, ack, sha256;
// files [{name, bytes, modified}], total, dir) and add ours. The transfer itself is the daemon's
// (services/file-transfer.ts): resumable, any size, SHA-256-checked before the file appears in received/.
import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve as resolvePath } from 'node:path';
import { err, ok, type Result } from '../core/result.js';
import { defineCommand, type CliContext, type Command, type CommandOutput } from './command.js';
import { formatBytes, table, type CliIo } from './output.js';
import { checkOptionalCount, checkDuration, checkPeer, literalAddress } from './validate.js';
import type { PilotClient } from '../sdk/client.js';
import { sizeBytes } from '../node/daemon-options.js';
import { MIN_RATE_LIMIT_BYTES_PER_SEC } from '../node/api.js';

const SEND_FILE_DEFAULT_TIMEOUT_MS = 60 * 60_000;
const REDRAW_INTERVAL_MS = 200;
const JSON_PROGRESS_INTERVAL_MS = 1000;
const BAR_WIDTH = 24;

function out(data: unknown, text?: string): Result<CommandOutput> {
  return ok(text === undefined ? { data } : { data, text });
}

async function targetOf(client: PilotClient, peer: string): Promise<string> {
  const lit = literalAddress(peer);
  if (lit) return lit;
  const f = await client.find(peer);
  return f.ok ? f.value.address : peer;
}

async function withTimeout<T>(p: Promise<Result<T>>, ms: number, what: string): Promise<Result<T>> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<Result<T>>((resolve) => {
    timer = setTimeout(
      () => resolve(err('timeout', `${what} did not finish within ${ms} ms`, { hint: 'raise --timeout; a retried send-file resumes where it stopped' })),
      ms,
    );
  });
  const r = await Promise.race([p, t]);
  clearTimeout(timer);
  return r;
}

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export interface TransferProgress {
  update(done: number, total: number): void;
  finish(): void;
}

/**
 * Progress of a transfer: a bar with bytes, rate and ETA on a terminal (human output), or with `--json
 * --progress` one NDJSON line per second on stderr: {"event":"progress","bytes_done","bytes_total","rate_bps",
 * "eta_s"}. Nothing otherwise (stdout stays one JSON document). The rate counts bytes since the first update,
 * so bytes a resumed transfer skipped do not inflate it.
 */
export function transferProgress(io: CliIo, mode: 'bar' | 'json' | 'none', label: string, nowMs: () => number = () => Date.now()): TransferProgress {
  if (mode === 'none') return { update() {}, finish() {} };
  let startMs: number | null = null;
  let startBytes = 0;
  let lastMs = -Infinity;
  let isDrawn = false;
  return {
    update(done, total) {
      const now = nowMs();
      if (startMs === null) {
        startMs = now;
        startBytes = done;
      }
      const interval = mode === 'json' ? JSON_PROGRESS_INTERVAL_MS : REDRAW_INTERVAL_MS;
      if (done < total && now - lastMs < interval) return;
      lastMs = now;
      const secs = Math.max(0.001, (now - startMs) / 1000);
      const rateBps = (done - startBytes) / secs;
      const etaS = rateBps > 0 ? (total - done) / rateBps : null;
      if (mode === 'json') {
        io.stderr.write(
          JSON.stringify({ event: 'progress', bytes_done: done, bytes_total: total, rate_bps: Math.round(rateBps), eta_s: etaS === null ? null : Math.round(etaS * 10) / 10 }) + '\n',
        );
        return;
      }
      const frac = total > 0 ? Math.min(1, done / total) : 1;
      const filled = Math.round(frac * BAR_WIDTH);
      io.stderr.write(
        `\r${label} [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%  ` +
          `${formatBytes(done)} / ${formatBytes(total)}  ${formatBytes(rateBps)}/s  ETA ${formatEta(etaS ?? NaN)} `,
      );
      isDrawn = true;
    },
    finish() {
      if (isDrawn) io.stderr.write('\n');
      isDrawn = false;
    },
  };
}

interface SendFileResultWire {
  name: string;
  bytes: number;
  sha256: string;
  ack?: boolean;
  ack_text?: string | null;
  protocol?: string;
  resumed_from?: number;
  attempts?: number;
  resume_offsets?: number[];
  stored_as?: string | null;
  duration_ms?: number;
}

const sendFile = defineCommand<{ peer: string; path: string; progress: boolean; retryMs: number; rateBps: number | null }>({
  name: 'send-file',
  group: 'Communication',
  summary:
    'Send a file of any size (data exchange, port 1001): chunked, acknowledged, resumable — a retry continues where a cut transfer stopped; the receiver checks the SHA-256 before the file appears in its received/. Progress bar on a terminal',
  args: [{ name: 'peer', required: true }, { name: 'path', required: true }],
  flags: [
    { name: 'timeout', kind: 'duration', value: '<dur>', description: 'time limit (global flag; default 1h)' },
    { name: 'progress', kind: 'bool', description: 'with --json: progress events as NDJSON lines on stderr (bytes_done, bytes_total, rate_bps, eta_s)' },
    { name: 'retry', kind: 'duration', value: '<dur>', description: 'redial and resume a cut transfer for this long without progress (default: fail at once; running send-file again resumes)' },
    { name: 'limit-rate', kind: 'string', value: '<size>', description: 'cap the sending rate at this many bytes per second, e.g. 512K, 10M, 1.5G (K/M/G = KiB/MiB/GiB; at least 16K; default: no cap)' },
  ],
  returns: 'filename, bytes, destination, ack, sha256, protocol (resumable|single-frame), resumed_from, attempts, resume_offsets, stored_as, duration_ms, rate_bps, limit_rate_bps (the --limit-rate cap, or null)',
  errors: ['not_running', 'not_found', 'connection_failed', 'timeout', 'quota_exceeded', 'hash_mismatch'],
  parse(a, ctx) {
    const peer = checkPeer(a.positional[0]!);
    if (!peer.ok) return peer;
    const retry = a.flags.get('retry');
    let retryMs = 0;
    if (retry !== undefined) {
      const r = checkDuration(retry, 0, 'retry');
      if (!r.ok) return r;
      retryMs = r.value;
    }
    const limit = a.flags.get('limit-rate');
    let rateBps: number | null = null;
    if (limit !== undefined) {
      const n = limit === true ? NaN : sizeBytes(limit);
      if (!Number.isSafeInteger(n) || n < MIN_RATE_LIMIT_BYTES_PER_SEC) {
        return err('invalid_argument', `invalid --limit-rate '${String(limit)}'`, { hint: 'a rate in bytes per second of at least 16K, e.g. 512K, 10M or 1.5G (K/M/G = KiB/MiB/GiB)' });
      }
      rateBps = n;
    }
    return ok({ peer: peer.value, path: resolvePath(ctx.io.cwd, a.positional[1]!), progress: a.flags.get('progress') === true, retryMs, rateBps });
  },
  async run(ctx, p) {
    if (!existsSync(p.path)) return err('not_found', `file not found: ${p.path}`, { hint: 'check the path' });
    if (!statSync(p.path).isFile()) return err('invalid_argument', `not a regular file: ${p.path}`, { hint: 'send-file sends one file' });
    const c = await ctx.client();
    if (!c.ok) return c;
    const target = await targetOf(c.value, p.peer);
    const mode = ctx.isJson ? (p.progress ? 'json' : 'none') : ctx.io.stderrIsTTY ? 'bar' : 'none';
    const bar = transferProgress(ctx.io, mode, `sending ${basename(p.path)}`);
    const r = await withTimeout(
      c.value.sendFile(p.peer, p.path, (d, t) => bar.update(d, t), { retryForMs: p.retryMs, rateBytesPerSec: p.rateBps ?? undefined }) as Promise<Result<SendFileResultWire>>,
      ctx.timeoutMs ?? SEND_FILE_DEFAULT_TIMEOUT_MS,
      'send-file',
    );
    bar.finish();
    if (!r.ok) return r;
    const v = r.value;
    const durationMs = v.duration_ms ?? null;
    const sentBytes = v.bytes - (v.resumed_from ?? 0);
    const rateBps = durationMs !== null && durationMs > 0 ? Math.round((sentBytes * 1000) / durationMs) : null;
    const data = {
      filename: v.name,
      bytes: v.bytes,
      destination: target,
      ack: v.ack ?? true,
      sha256: v.sha256,
      protocol: v.protocol ?? 'single-frame',
      resumed_from: v.resumed_from ?? 0,
      attempts: v.attempts ?? 1,
      resume_offsets: v.resume_offsets ?? [],
      stored_as: v.stored_as ?? null,
      duration_ms: durationMs,
      rate_bps: rateBps,
      limit_rate_bps: p.rateBps,
    };
    let text = `sent ${v.name} (${formatBytes(v.bytes)}) to ${target}`;
    if (rateBps !== null) text += ` in ${((durationMs ?? 0) / 1000).toFixed(1)} s (${formatBytes(rateBps)}/s)`;
    text += `\n  sha256 ${v.sha256}\n`;
    if (data.resumed_from > 0) text += `  resumed at ${formatBytes(data.resumed_from)}\n`;
    if (data.attempts > 1) text += `  ${data.attempts} connections (cut and resumed)\n`;
    if (data.protocol === 'single-frame') text += '  the receiver takes single-frame files only (an original node): ≤ 16 MiB\n';
    return out(data, text);
  },
});

const received = defineCommand<{ clear: boolean; limit: number | undefined; since: string | undefined }>({
  name: 'received',
  group: 'Mailbox',
  summary: 'List files received via data exchange (oldest first; --limit/--since page through; unfinished transfers are never listed); --clear deletes them',
  args: [],
  flags: [
    { name: 'clear', kind: 'bool', description: 'delete all received files' },
    { name: 'limit', kind: 'int', value: '<n>', description: 'at most n files (default: all)' },
    { name: 'since', kind: 'string', value: '<time|cursor>', description: 'only files received at/after an RFC 3339 time, or after a previous next_since' },
  ],
  returns: 'files [{name, bytes, modified, path, from, from_hostname, sha256, size, received_at}], total, dir, has_more, next_since; with --clear: cleared',
  errors: ['not_running'],
  parse(a) {
    const clear = a.flags.get('clear') === true;
    const l = checkOptionalCount(a.flags.get('limit'), 'limit');
    if (!l.ok) return l;
    const limit = l.value;
    const since = a.flags.get('since');
    if (since === true) return err('invalid_argument', '--since needs a value', { hint: 'pilotctl received --since 2026-01-02T03:04:05Z' });
    if (since !== undefined && !/^\d{4}-\d{2}-\d{2}T/.test(since)) {
      return err('invalid_argument', `invalid --since '${since}'`, { hint: 'an RFC 3339 time like 2026-01-02T03:04:05Z, or the next_since of a previous page' });
    }
    if (clear && (limit !== undefined || since !== undefined)) {
      return err('invalid_argument', '--clear deletes every received file; it takes no --limit or --since', { hint: 'pilotctl received --clear' });
    }
    return ok({ clear, limit, since });
  },
  async run(ctx, p) {
    const c = await ctx.client();
    if (!c.ok) return c;
    if (p.clear) {
      const r = await c.value.received({ clear: true });
      if (!r.ok) return r;
      const n = r.value.cleared ?? r.value.files.length;
      return out({ cleared: n }, `cleared ${n} received file(s)\n`);
    }
    const r = await c.value.received({ limit: p.limit, since: p.since });
    if (!r.ok) return r;
    const files = r.value.files.map((f) => ({ ...f, bytes: f.size, modified: f.received_at }));
    const page = { has_more: r.value.has_more ?? false, next_since: r.value.next_since ?? null };
    const dir = join(ctx.home, 'received');
    if (files.length === 0) {
      const empty = p.since !== undefined ? 'no files received after that point\n' : 'no received files\n  files appear here when someone sends: pilotctl send-file <your-hostname> <file>\n';
      return out({ files: [], total: 0, dir, ...page }, empty);
    }
    let text = table(['NAME', 'SIZE', 'FROM', 'RECEIVED'], files.map((f) => [f.name, formatBytes(f.size), f.from, f.received_at])) + `\ntotal: ${files.length}\n`;
    if (page.has_more) text += `next page: pilotctl received --limit ${p.limit ?? files.length} --since ${page.next_since}\n`;
    return out({ files, total: files.length, dir, ...page }, text);
  },
});

export const FILES_COMMANDS: Command[] = [sendFile, received];

/** For tests. */
export { formatEta };
export type { CliContext };
