// JSON files people edit by hand (<home>/config.json): a syntax error is reported as file:line:column with what
// was expected, because V8's JSON.parse messages give a position only for some errors ("Unexpected token '}',
// "{"a": }" is not valid JSON" has none) and never a line. The locator is a small validating scanner run only
// after JSON.parse has failed, so what is accepted is exactly what JSON.parse accepts.
import { readFileSync } from 'node:fs';
import { err, ok, type Result } from './result.js';

export interface JsonSyntaxError {
  /** UTF-16 offset of the first offending character (text.length = end of file). */
  offset: number;
  /** 1-based. */
  line: number;
  /** 1-based, in characters. */
  column: number;
  reason: string;
  /** The offending line, without its line break (for showing under the message). */
  lineText: string;
}

const MAX_DEPTH = 512;
const NUMBER_RE = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Where `text` stops being JSON, or null when it is valid JSON. Pure; never throws. */
export function findJsonSyntaxError(text: string): JsonSyntaxError | null {
  let i = 0;
  let failure: { at: number; reason: string } | null = null;
  const fail = (reason: string, at = i): false => {
    failure ??= { at, reason };
    return false;
  };
  const found = (at: number): string => (at >= text.length ? 'the end of the file' : `'${text[at]}'`);
  // A missing comma is noticed on the next key's line; name the line it belongs to when that is another one.
  const missingAfter = (end: number): string => {
    const endLine = lineOf(text, end);
    return endLine !== lineOf(text, i) ? ` at the end of line ${endLine}` : '';
  };
  const ws = (): void => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };

  const str = (): boolean => {
    const start = i++;
    while (i < text.length) {
      const c = text[i]!;
      if (c === '"') {
        i++;
        return true;
      }
      if (c === '\\') {
        const e = text[i + 1];
        if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
        else return fail(`invalid escape '\\${e ?? ''}' in a string`);
      } else if (c.charCodeAt(0) < 0x20) {
        return fail(c === '\n' ? 'line break inside a string (a closing " is missing?)' : 'control character inside a string');
      } else i++;
    }
    return fail('unterminated string (a closing " is missing)', start);
  };

  const value = (depth: number): boolean => {
    ws();
    if (depth > MAX_DEPTH) return fail('nested too deeply');
    const c = text[i];
    if (c === undefined) return fail('unexpected end of the file: a value is missing');
    if (c === '{') return object(depth);
    if (c === '[') return array(depth);
    if (c === '"') return str();
    if (c === '-' || (c >= '0' && c <= '9')) {
      NUMBER_RE.lastIndex = i;
      const m = NUMBER_RE.exec(text);
      if (!m) return fail('invalid number');
      i += m[0].length;
      return true;
    }
    for (const lit of ['true', 'false', 'null']) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return true;
      }
    }
    if (c === "'") return fail("strings need double quotes, not '");
    return fail(`unexpected ${found(i)}: expected a value (a "string", number, true, false, null, {…} or […])`);
  };

  const object = (depth: number): boolean => {
    i++;
    ws();
    if (text[i] === '}') {
      i++;
      return true;
    }
    for (;;) {
      ws();
      if (text[i] !== '"') {
        if (text[i] === '}') return fail("trailing comma before '}'");
        return fail(`expected a key in double quotes, found ${found(i)}`);
      }
      if (!str()) return false;
      ws();
      if (text[i] !== ':') return fail(`expected ':' after the key, found ${found(i)}`);
      i++;
      if (!value(depth + 1)) return false;
      const valueEnd = i;
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '}') {
        i++;
        return true;
      }
      return fail(`expected ',' or '}' after a value, found ${found(i)}${text[i] === '"' ? ` (a comma is missing${missingAfter(valueEnd)})` : ''}`);
    }
  };

  const array = (depth: number): boolean => {
    i++;
    ws();
    if (text[i] === ']') {
      i++;
      return true;
    }
    for (;;) {
      ws();
      if (text[i] === ']') return fail("trailing comma before ']'");
      if (!value(depth + 1)) return false;
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === ']') {
        i++;
        return true;
      }
      return fail(`expected ',' or ']' after a value, found ${found(i)}`);
    }
  };

  if (text.charCodeAt(0) === 0xfeff) fail('the file starts with a byte-order mark (save it as UTF-8 without BOM)', 0);
  else if (value(0)) {
    ws();
    if (i < text.length) fail(`unexpected ${found(i)} after the end of the JSON value`);
  }
  const f = failure as { at: number; reason: string } | null;
  return f === null ? null : locate(text, f.at, f.reason);
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let k = 0; k < offset && k < text.length; k++) if (text.charCodeAt(k) === 10) line++;
  return line;
}

function locate(text: string, offset: number, reason: string): JsonSyntaxError {
  const at = Math.min(offset, text.length);
  const lineStart = text.lastIndexOf('\n', at - 1) + 1;
  let lineEnd = text.indexOf('\n', at);
  if (lineEnd < 0) lineEnd = text.length;
  return { offset: at, line: lineOf(text, lineStart), column: at - lineStart + 1, reason, lineText: text.slice(lineStart, lineEnd).replace(/\r$/, '') };
}

/**
 * Parse `text` as one JSON object (a config file). Errors: `invalid_argument` naming `name:line:column` and what
 * was expected (detail: path, line, column, line_text), or that the document is not an object. Pure.
 */
export function parseJsonObject(text: string, name: string): Result<Record<string, unknown>> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    const at = findJsonSyntaxError(text) ?? locate(text, 0, (e as Error).message);
    return err('invalid_argument', `${name}:${at.line}:${at.column}: ${at.reason}`, {
      hint: `fix line ${at.line} of ${name} (one JSON object, e.g. {"registry": "10.0.0.5:9000"}), or move the file aside`,
      detail: { path: name, line: at.line, column: at.column, line_text: at.lineText },
    });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    return err('invalid_argument', `${name} is not a JSON object (it holds ${Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v})`, {
      hint: `write one object of settings, e.g. {"registry": "10.0.0.5:9000"}, or move ${name} aside`,
      detail: { path: name },
    });
  }
  return ok(v as Record<string, unknown>);
}

/**
 * Read and parse a JSON-object file; ok(null) when it does not exist. Errors: as parseJsonObject, and `internal`
 * when it cannot be read. Does file-system I/O.
 */
export function readJsonObjectFile(path: string): Result<Record<string, unknown> | null> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok(null);
    return err('internal', `cannot read ${path}: ${(e as Error).message}`, { hint: `check the permissions of ${path}`, detail: { path }, cause: e });
  }
  return parseJsonObject(text, path);
}
