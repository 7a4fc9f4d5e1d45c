// The checks behind test/arch/imports.test.ts, on one file's text at a time, so the test can feed them planted
// violations. Matching runs on a blanked copy of the source (same length, same line breaks): comments, string
// contents, template text and regex bodies are spaces, so a comment or a string naming `Date.now()` is not a
// call, and a `//` inside a string does not hide the code after it. Import specifiers are read back from the
// original text at the blanked quotes' positions.

/** Source folder → the src/ folders it may import from (one-way flow). */
export const ALLOWED: Record<string, string[]> = {
  core: [],
  wire: ['core'],
  crypto: ['core', 'wire'],
  transport: ['core', 'wire'],
  nat: ['core', 'wire'],
  datapath: ['core', 'wire', 'crypto'],
  registry: ['core', 'wire', 'crypto', 'datapath'], // datapath: the beacon's UDP socket (src/registry/beacon-socket.ts)
  node: ['core', 'wire', 'crypto', 'transport', 'nat', 'datapath', 'policy'],
  services: ['core', 'wire', 'node'],
  ipc: ['core', 'wire', 'node'],
  policy: ['core', 'wire'], // the policy language (issue 15), pure
  cli: ['core', 'wire', 'ipc', 'sdk', 'node', 'policy'], // node: the NodeApi contract types (node/api.ts); audit verify (node/audit/chain.ts)
  sdk: ['core', 'wire', 'ipc', 'node', 'services', 'crypto', 'datapath'],
  bin: ['core', 'wire', 'crypto', 'transport', 'nat', 'datapath', 'registry', 'node', 'services', 'ipc', 'cli', 'sdk'],
};

/** Sans-IO folders: no I/O modules, clocks, timers or ambient randomness inside. */
export const SANS_IO = ['wire', 'crypto', 'transport', 'nat', 'policy'];

/** Node built-ins that do I/O or read the clock (with or without the `node:` prefix). */
export const IO_MODULES = [
  'dgram',
  'net',
  'tls',
  'fs',
  'fs/promises',
  'dns',
  'dns/promises',
  'http',
  'https',
  'http2',
  'os',
  'child_process',
  'worker_threads',
  'cluster',
  'timers',
  'timers/promises',
  'perf_hooks',
  'readline',
  'process',
  'inspector',
];

/** In src/node: the one file that may touch timers, and the one that plugs in the real clock and randomness. */
export const NODE_TIMER_OWNER = 'node/driver.ts';
export const NODE_WORLD_OWNER = 'node/env.ts';

type Rule = { name: string; re: RegExp };

const TIMERS: Rule[] = [
  { name: 'setTimeout', re: /(?<![\w$.])setTimeout\b|\bglobalThis\s*\.\s*setTimeout\b/ },
  { name: 'setInterval', re: /(?<![\w$.])setInterval\b|\bglobalThis\s*\.\s*setInterval\b/ },
  { name: 'setImmediate', re: /(?<![\w$.])setImmediate\b|\bglobalThis\s*\.\s*setImmediate\b/ },
];
const CLOCKS: Rule[] = [
  { name: 'Date.now', re: /\bDate\s*\.\s*now\b/ },
  // `new Date()` reads the clock; `new Date(wall.nowMs())` only formats a time that was passed in
  { name: 'new Date()', re: /\bnew\s+Date\b(?!\s*\((?!\s*\)))/ },
  { name: 'performance.now', re: /\bperformance\s*\.\s*now\b/ },
  { name: 'hrtime', re: /\bhrtime\b/ },
];
const RANDOM: Rule[] = [{ name: 'Math.random', re: /\bMath\s*\.\s*random\b/ }];

const REGEX_AFTER_WORD = new Set(['return', 'typeof', 'case', 'do', 'else', 'in', 'of', 'new', 'delete', 'void', 'throw', 'yield', 'await', 'instanceof']);
const isIdent = (c: string): boolean => /[\w$]/.test(c);

/**
 * `src` with comments, string and template contents and regex bodies turned into spaces (line breaks kept),
 * quotes, slashes and `${…}` code left in place: the code a reader would run, at the same offsets.
 */
export function blank(src: string): string {
  const out = src.split('');
  const n = src.length;
  const wipe = (a: number, b: number): void => {
    for (let k = a; k < b && k < n; k++) if (out[k] !== '\n') out[k] = ' ';
  };
  let depth = 0; // brace depth in code
  const templateAt: number[] = []; // depths at which a `${` returns to template text
  let prev = ''; // last significant code character
  let prevWord = '';
  let isGap = false; // whitespace since prev
  let i = 0;

  const template = (start: number): number => {
    let j = start;
    while (j < n) {
      const c = src[j]!;
      if (c === '\\') {
        j += 2;
      } else if (c === '`') {
        wipe(start, j);
        prev = '"';
        return j + 1;
      } else if (c === '$' && src[j + 1] === '{') {
        wipe(start, j);
        templateAt.push(depth);
        depth++;
        prev = '{';
        return j + 2;
      } else {
        j++;
      }
    }
    wipe(start, n);
    return n;
  };

  while (i < n) {
    const c = src[i]!;
    if (c === '/' && src[i + 1] === '/') {
      let e = src.indexOf('\n', i);
      if (e < 0) e = n;
      wipe(i, e);
      i = e;
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      const e = src.indexOf('*/', i + 2);
      const end = e < 0 ? n : e + 2;
      wipe(i, end);
      i = end;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < n && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      wipe(i + 1, j);
      i = j + 1;
      prev = '"';
      continue;
    }
    if (c === '`') {
      i = template(i + 1);
      continue;
    }
    if (c === '/' && (prev === '' || '(,=:[!&|?{};+-*%<>~^'.includes(prev) || (isIdent(prev) && REGEX_AFTER_WORD.has(prevWord)))) {
      let j = i + 1;
      let inClass = false;
      while (j < n && src[j] !== '\n') {
        const d = src[j]!;
        if (d === '\\') {
          j += 2;
          continue;
        }
        if (d === '[') inClass = true;
        else if (d === ']') inClass = false;
        else if (d === '/' && !inClass) break;
        j++;
      }
      wipe(i + 1, j);
      i = j + 1;
      while (i < n && isIdent(src[i]!)) i++; // flags
      prev = ')';
      continue;
    }
    if (c === '{') depth++;
    if (c === '}') {
      depth--;
      if (templateAt.length > 0 && templateAt[templateAt.length - 1] === depth) {
        templateAt.pop();
        i = template(i + 1);
        continue;
      }
    }
    if (/\s/.test(c)) {
      isGap = true;
    } else {
      prevWord = isIdent(c) ? (isIdent(prev) && !isGap ? prevWord + c : c) : '';
      prev = c;
      isGap = false;
    }
    i++;
  }
  return out.join('');
}

/** Module specifiers of the file's static imports/exports, `import()` and `require()` calls. */
export function importSpecifiers(src: string): string[] {
  const code = blank(src);
  const specs: string[] = [];
  for (const m of code.matchAll(/(?<![\w$.])from\s*(['"])|(?<![\w$.])(?:import|require)\s*\(?\s*(['"])/g)) {
    const quote = m[1] ?? m[2]!;
    const open = m.index + m[0].length - 1;
    const close = code.indexOf(quote, open + 1);
    if (close > open) specs.push(src.slice(open + 1, close));
  }
  return specs;
}

function lineOf(code: string, index: number): number {
  let line = 1;
  for (let k = 0; k < index; k++) if (code.charCodeAt(k) === 10) line++;
  return line;
}

function hits(rel: string, code: string, rules: Rule[], why: string): string[] {
  const out: string[] = [];
  for (const r of rules) {
    const g = new RegExp(r.re.source, 'g');
    for (const m of code.matchAll(g)) out.push(`${rel}:${lineOf(code, m.index)}: ${r.name} ${why}`);
  }
  return out;
}

function ioModule(spec: string): string | null {
  const bare = spec.startsWith('node:') ? spec.slice(5) : spec;
  return IO_MODULES.includes(bare) ? bare : null;
}

/** `rel` is the path under src/ with forward slashes, e.g. `crypto/session.ts`. */
export function folderOf(rel: string): string {
  return rel.split('/')[0]!;
}

/** Import edges between src/ folders that the one-way flow does not allow. */
export function layerViolations(rel: string, src: string, resolveTarget: (spec: string) => string | null): string[] {
  const from = folderOf(rel);
  const allowed = ALLOWED[from];
  if (!allowed) return [`${rel}: folder '${from}' is not in the layout table`];
  const out: string[] = [];
  for (const spec of importSpecifiers(src)) {
    if (!spec.startsWith('.')) continue;
    const target = resolveTarget(spec);
    if (target === null || target === from) continue;
    if (!allowed.includes(target)) out.push(`${rel} imports ${target} (${spec})`);
  }
  return out;
}

/** A file in a sans-IO folder: no I/O module, clock, timer or Math.random. Other folders: nothing. */
export function sansIoViolations(rel: string, src: string): string[] {
  if (!SANS_IO.includes(folderOf(rel))) return [];
  const code = blank(src);
  const out: string[] = [];
  for (const spec of importSpecifiers(src)) {
    if (ioModule(spec) !== null) out.push(`${rel}: imports ${spec} (I/O in a sans-IO folder)`);
  }
  out.push(...hits(rel, code, TIMERS, 'in a sans-IO folder'));
  out.push(...hits(rel, code, CLOCKS, 'in a sans-IO folder'));
  out.push(...hits(rel, code, RANDOM, 'in a sans-IO folder'));
  return out;
}

/**
 * A file in src/node: only node/driver.ts touches timers (or imports node:timers); only node/env.ts reads the
 * real clocks or Math.random. Other folders: nothing.
 */
export function nodeViolations(rel: string, src: string): string[] {
  if (folderOf(rel) !== 'node') return [];
  const code = blank(src);
  const out: string[] = [];
  if (rel !== NODE_TIMER_OWNER) {
    for (const spec of importSpecifiers(src)) {
      const m = ioModule(spec);
      if (m === 'timers' || m === 'timers/promises') out.push(`${rel}: imports ${spec} (timers belong to ${NODE_TIMER_OWNER})`);
    }
    out.push(...hits(rel, code, TIMERS, `(timers belong to ${NODE_TIMER_OWNER})`));
  }
  if (rel !== NODE_WORLD_OWNER) {
    out.push(...hits(rel, code, CLOCKS, `(the clock comes from ${NODE_WORLD_OWNER})`));
    out.push(...hits(rel, code, RANDOM, `(randomness comes from ${NODE_WORLD_OWNER})`));
  }
  return out;
}
