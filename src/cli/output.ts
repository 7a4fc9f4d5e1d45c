// Rendering: the JSON contract (STYLE.md §4), short aligned human text, and a TTY-only progress bar.
import type { Readable, Writable } from 'node:stream';
import type { PilotError } from '../core/errors.js';

/** Where a command reads and writes; the bin passes process streams, tests pass buffers. */
export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  stdinIsTTY: boolean;
  stderrIsTTY: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Path of the running pilotctl script (to find pilot-daemon next to it). */
  scriptPath: string;
}

export function writeJsonOk(io: CliIo, data: unknown): void {
  io.stdout.write(JSON.stringify({ status: 'ok', data: data ?? {} }) + '\n');
}

export function writeError(io: CliIo, isJson: boolean, e: PilotError): void {
  if (isJson) {
    const out: Record<string, unknown> = { status: 'error', code: e.code, message: e.message };
    if (e.hint !== undefined) out.hint = e.hint;
    if (e.detail !== undefined) out.detail = e.detail;
    io.stderr.write(JSON.stringify(out) + '\n');
  } else {
    io.stderr.write(`error: ${e.message}\n` + (e.hint ? `hint:  ${e.hint}\n` : ''));
  }
}

/** Left-aligned columns, two spaces apart; the last column is not padded. */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd())
    .join('\n') + '\n';
}

/** `label: value` lines with the values aligned. */
export function fields(pairs: Array<[string, string | number | null | undefined]>, indent = '  '): string {
  const shown = pairs.filter(([, v]) => v !== null && v !== undefined && v !== '');
  const w = Math.max(...shown.map(([k]) => k.length)) + 1;
  return shown.map(([k, v]) => `${indent}${(k + ':').padEnd(w)} ${v}`).join('\n') + '\n';
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(1)} GB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${bytes} B`;
}

export function formatDuration(seconds: number): string {
  const s = Math.floor(seconds);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

export interface Progress {
  update(done: number, total: number): void;
  finish(): void;
}

const NO_PROGRESS: Progress = { update() {}, finish() {} };
const BAR_WIDTH = 30;
const REDRAW_INTERVAL_MS = 100;

/** A one-line bar on stderr, only when stderr is a terminal and output is not JSON. */
export function createProgress(io: CliIo, isJson: boolean, label: string): Progress {
  if (isJson || !io.stderrIsTTY) return NO_PROGRESS;
  const startMs = Date.now();
  let lastDrawMs = 0;
  let isDrawn = false;
  return {
    update(done, total) {
      const now = Date.now();
      if (done < total && now - lastDrawMs < REDRAW_INTERVAL_MS) return;
      lastDrawMs = now;
      const frac = total > 0 ? Math.min(1, done / total) : 0;
      const filled = Math.round(frac * BAR_WIDTH);
      const mbps = done / 1024 / 1024 / Math.max(0.001, (now - startMs) / 1000);
      io.stderr.write(
        `\r${label} [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%  ` +
          `${formatBytes(done)} / ${formatBytes(total)}  ${mbps.toFixed(1)} MB/s `,
      );
      isDrawn = true;
    },
    finish() {
      if (isDrawn) io.stderr.write('\n');
      isDrawn = false;
    },
  };
}
