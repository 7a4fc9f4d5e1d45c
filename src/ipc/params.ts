// Typed reads of a request's params. The first problem is kept as a PilotError (invalid_argument) and later
// reads return placeholders, so a handler reads everything and checks `error` once.
import { pilotError, type PilotError } from '../core/errors.js';

export class ParamReader {
  error: PilotError | null = null;
  private readonly p: Record<string, unknown>;

  constructor(params: unknown) {
    this.p = typeof params === 'object' && params !== null && !Array.isArray(params) ? (params as Record<string, unknown>) : {};
    if (params !== undefined && this.p !== params) this.fail('params must be a JSON object');
  }

  private fail(message: string): void {
    if (this.error === null) this.error = pilotError('invalid_argument', message);
  }

  str(name: string): string {
    const v = this.p[name];
    if (typeof v !== 'string') {
      this.fail(`param '${name}' must be a string`);
      return '';
    }
    return v;
  }

  optStr(name: string): string | undefined {
    const v = this.p[name];
    if (v === undefined || v === null) return undefined;
    return this.str(name);
  }

  int(name: string, min: number, max: number): number {
    const v = this.p[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(`param '${name}' must be an integer in ${min}..${max}`);
      return min;
    }
    return v;
  }

  optInt(name: string, min: number, max: number): number | undefined {
    const v = this.p[name];
    if (v === undefined || v === null) return undefined;
    return this.int(name, min, max);
  }

  bool(name: string, dflt: boolean): boolean {
    const v = this.p[name];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') {
      this.fail(`param '${name}' must be a boolean`);
      return dflt;
    }
    return v;
  }

  strList(name: string): string[] {
    const v = this.p[name];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
      this.fail(`param '${name}' must be an array of strings`);
      return [];
    }
    return v as string[];
  }

  /** Binary payloads travel as base64 text. */
  bytes(name: string): Uint8Array {
    const s = this.str(name);
    if (this.error) return new Uint8Array(0);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
      this.fail(`param '${name}' must be base64`);
      return new Uint8Array(0);
    }
    return Buffer.from(s, 'base64');
  }
}
