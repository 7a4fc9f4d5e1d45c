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

// Unicode controls (Cc: C0, DEL, C1), format characters (Cf: bidi embeddings/overrides/isolates/marks such as
// U+202E, zero-width characters, BOM, tag characters), line/paragraph separators and lone surrogates.
const UNSAFE_RE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

function escapeChar(ch: string, multiline: boolean): string {
  if (multiline && (ch === '\n' || ch === '\t')) return ch;
  if (ch === '\n') return '\\n';
  if (ch === '\r') return '\\r';
  if (ch === '\t') return '\\t';
  const cp = ch.codePointAt(0)!;
  if (cp < 0x100) return `\\x${cp.toString(16).padStart(2, '0')}`;
  if (cp <= 0xffff) return `\\u${cp.toString(16).padStart(4, '0')}`;
  return `\\u{${cp.toString(16)}}`;
}

/**
 * Text from peers (message bodies, file names, hostnames, tags, justifications, error messages) made safe to
 * print on a terminal: every control, bidi/format character, separator and lone surrogate becomes a visible
 * escape (`\x1b`, `\u202e`, `\n`), so nothing a peer sends can move the cursor, recolour the screen or reorder
 * the text after it. `multiline` keeps newlines and tabs (message bodies). Every human-readable renderer of
 * peer-supplied text goes through this; `--json` output is never escaped (it stays exact).
 */
export function escapeText(s: string, opts: { multiline?: boolean } = {}): string {
  const multiline = opts.multiline === true;
  return s.replace(UNSAFE_RE, (ch) => escapeChar(ch, multiline));
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
    // Error messages can carry a peer's words (an ERR ack's reason, a rejection).
    io.stderr.write(`error: ${escapeText(e.message)}\n` + (e.hint ? `hint:  ${escapeText(e.hint)}\n` : ''));
  }
}

/** Left-aligned columns, two spaces apart; the last column is not padded. Cells are escaped (escapeText). */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => escapeText(String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd())
    .join('\n') + '\n';
}

/** `label: value` lines with the values aligned; values are escaped (escapeText). */
export function fields(pairs: Array<[string, string | number | null | undefined]>, indent = '  '): string {
  const shown = pairs.filter(([, v]) => v !== null && v !== undefined && v !== '');
  const w = Math.max(...shown.map(([k]) => k.length)) + 1;
  return shown.map(([k, v]) => `${indent}${(k + ':').padEnd(w)} ${escapeText(String(v))}`).join('\n') + '\n';
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
