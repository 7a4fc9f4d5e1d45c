// Where each value of a JSON document starts, by path ("rules[1].action"), so a policy that is valid JSON but
// wrong (an unknown action, a port out of range) is reported at its line and column like a syntax error is
// (src/core/json-text.ts). Run only on text JSON.parse accepted; duplicate keys, which JSON.parse silently
// resolves to the last one, are reported. Pure; never throws.

export interface JsonPositions {
  /** UTF-16 offset where the value at `path` starts ('' = the document). */
  offsets: Map<string, number>;
  /** Paths given twice in one object, with the offset of the second key. */
  duplicates: { path: string; offset: number }[];
}

export function jsonPositions(text: string): JsonPositions {
  const offsets = new Map<string, number>();
  const duplicates: { path: string; offset: number }[] = [];
  let i = 0;
  const ws = (): void => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r' || text[i] === '\ufeff')) i++;
  };
  const str = (): string => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    try {
      return JSON.parse(text.slice(start, i)) as string;
    } catch {
      return text.slice(start + 1, i - 1);
    }
  };
  // Iterative over an explicit stack would be more robust; depth is bounded by the caller (MAX_DEPTH check
  // before parsing), and JSON.parse already accepted the text.
  const value = (path: string, depth: number): void => {
    ws();
    if (!offsets.has(path)) offsets.set(path, i);
    if (depth > 64) {
      skip();
      return;
    }
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      const seen = new Set<string>();
      if (text[i] === '}') {
        i++;
        return;
      }
      while (i < text.length) {
        ws();
        const keyAt = i;
        const k = str();
        const p = path === '' ? k : `${path}.${k}`;
        if (seen.has(k)) duplicates.push({ path: p, offset: keyAt });
        seen.add(k);
        ws();
        i++; // ':'
        value(p, depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        i++; // '}'
        return;
      }
      return;
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      let n = 0;
      while (i < text.length) {
        value(`${path}[${n++}]`, depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        i++; // ']'
        return;
      }
      return;
    }
    if (c === '"') {
      str();
      return;
    }
    while (i < text.length && !',]} \t\r\n'.includes(text[i]!)) i++;
  };
  // Past the depth limit: skip a whole value without recording paths.
  const skip = (): void => {
    let depth = 0;
    let isInString = false;
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (isInString) {
        if (c === '\\') i++;
        else if (c === '"') isInString = false;
        continue;
      }
      if (c === '"') isInString = true;
      else if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        depth--;
        if (depth === 0) {
          i++;
          return;
        }
      } else if (depth === 0 && (c === ',' || c === '}' || c === ']')) return;
    }
  };
  value('', 0);
  return { offsets, duplicates };
}

/** 1-based line and column of a UTF-16 offset. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let k = 0; k < offset && k < text.length; k++) {
    if (text.charCodeAt(k) === 10) {
      line++;
      lineStart = k + 1;
    }
  }
  return { line, column: Math.min(offset, text.length) - lineStart + 1 };
}
