// One-way flow: core → wire → crypto → transport → node → services | ipc → cli | sdk.
// Any import edge between src/ folders not listed here fails the test.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ALLOWED: Record<string, string[]> = {
  core: [],
  wire: ['core'],
  crypto: ['core', 'wire'],
  transport: ['core', 'wire'],
  nat: ['core', 'wire'],
  datapath: ['core', 'wire', 'crypto'],
  registry: ['core', 'wire', 'crypto'],
  node: ['core', 'wire', 'crypto', 'transport', 'nat', 'datapath'],
  services: ['core', 'wire', 'node'],
  ipc: ['core', 'wire', 'node'],
  cli: ['core', 'wire', 'ipc', 'sdk', 'node'], // node: the NodeApi contract types (node/api.ts)
  sdk: ['core', 'wire', 'ipc', 'node', 'services', 'crypto', 'datapath'],
  bin: ['core', 'wire', 'crypto', 'transport', 'nat', 'datapath', 'registry', 'node', 'services', 'ipc', 'cli', 'sdk'],
};
// Sans-IO folders: no clocks or timers inside.
const SANS_IO = ['wire', 'crypto', 'transport', 'nat'];

const here = dirname(fileURLToPath(import.meta.url));
// Works from test/arch (tsx) and dist/test/arch (compiled): find the project's src/ with .ts files.
function findSrc(): string {
  let d = here;
  for (let i = 0; i < 6; i++) {
    const cand = join(d, 'src');
    try {
      if (statSync(join(cand, 'core', 'errors.ts')).isFile()) return cand;
    } catch {
      /* keep climbing */
    }
    d = dirname(d);
  }
  throw new Error('src/ not found from ' + here);
}
const SRC = findSrc();

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

test('src/ imports follow the one-way flow', () => {
  const violations: string[] = [];
  for (const file of walk(SRC)) {
    const from = relative(SRC, file).split(sep)[0]!;
    const allowed = ALLOWED[from];
    if (!allowed) {
      violations.push(`${relative(SRC, file)}: folder '${from}' is not in the layout table`);
      continue;
    }
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:import|export)[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
      const spec = m[1] ?? m[2]!;
      const target = relative(SRC, resolve(dirname(file), spec)).split(sep)[0]!;
      if (target === from || target.startsWith('..')) continue;
      if (!allowed.includes(target)) violations.push(`${relative(SRC, file)} imports ${target} (${spec})`);
    }
    if (SANS_IO.includes(from) && /\bDate\.now\(|\bsetTimeout\(|\bsetInterval\(|performance\.now\(|hrtime/.test(text)) {
      violations.push(`${relative(SRC, file)}: clock or timer in a sans-IO folder`);
    }
  }
  assert.deepEqual(violations, []);
});
