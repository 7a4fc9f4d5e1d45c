import { pilotError, type ErrorCode, type PilotError } from './errors.js';

export type Result<T> = { ok: true; value: T } | { ok: false; error: PilotError };

/** The one `ok()` without a value (hot paths return it per packet; results are never mutated). */
const OK_VOID: { ok: true; value: undefined } = Object.freeze({ ok: true, value: undefined });

export function ok<T>(value: T): Result<T>;
export function ok(): Result<void>;
export function ok<T>(value?: T): Result<T | undefined> {
  return arguments.length === 0 ? OK_VOID : { ok: true, value };
}

export function err<T = never>(
  code: ErrorCode,
  message: string,
  extra?: { hint?: string; detail?: Record<string, unknown>; cause?: unknown },
): Result<T> {
  return { ok: false, error: pilotError(code, message, extra) };
}

export function errFrom<T = never>(error: PilotError): Result<T> {
  return { ok: false, error };
}
