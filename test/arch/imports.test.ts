// One-way flow: core → wire → crypto → transport → node → services | ipc → cli | sdk. Any import edge between
// src/ folders not listed in ALLOWED (test/arch/scan.ts) fails. Sans-IO folders (wire, crypto, transport, nat)
// import no I/O module and read no clock, timer or Math.random; in src/node only driver.ts touches timers and
// only env.ts plugs in the real clock and randomness. The checks are tested on planted violations below.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { blank, importSpecifiers, layerViolations, nodeViolations, sansIoViolations } from './scan.js';

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

const FILES = walk(SRC).map((file) => ({ file, rel: relative(SRC, file).split(sep).join('/'), text: readFileSync(file, 'utf8') }));

test('src/ imports follow the one-way flow', () => {
  const violations: string[] = [];
  for (const { file, rel, text } of FILES) {
    violations.push(
      ...layerViolations(rel, text, (spec) => {
        const target = relative(SRC, resolve(dirname(file), spec)).split(sep)[0]!;
        return target.startsWith('..') ? null : target;
      }),
    );
  }
  assert.deepEqual(violations, []);
});

test('sans-IO folders (wire, crypto, transport, nat) import no I/O module and read no clock, timer or Math.random', () => {
  const violations = FILES.flatMap(({ rel, text }) => sansIoViolations(rel, text));
  assert.deepEqual(violations, []);
});

test('src/node: only driver.ts touches timers, only env.ts reads the real clock or Math.random', () => {
  const violations = FILES.flatMap(({ rel, text }) => nodeViolations(rel, text));
  assert.deepEqual(violations, []);
});

// The checks themselves, on planted sources.

test('blanking keeps offsets and line breaks, removes comments and string contents, keeps template code', () => {
  const src = "const a = 'x // y'; // note\n/* b\n c */ const t = `n ${f('q')} m`; const r = /'[/]/g;";
  const b = blank(src);
  assert.equal(b.length, src.length);
  assert.equal(b.split('\n').length, src.split('\n').length);
  assert.ok(!b.includes('note') && !b.includes('x //') && !b.includes(' c '));
  assert.ok(b.includes('const t = `'), b);
  assert.ok(b.includes("${f(' ')}"), b);
  assert.ok(b.includes('const r = /'), b);
  assert.ok(!b.includes("'[/]"), b);
});

test('import specifiers: static, side-effect, re-export, dynamic and require; never from comments or strings', () => {
  const src = [
    "import { a } from './a.js';",
    "import type { B } from '../b/index.js';",
    "import 'node:fs';",
    "export * from \"./c.js\";",
    "const d = await import('node:dgram');",
    "const e = require('net');",
    "// import x from 'node:os';",
    "const s = \"import y from 'node:http'\";",
    "const z = Array.from('abc');",
  ].join('\n');
  assert.deepEqual(importSpecifiers(src), ['./a.js', '../b/index.js', 'node:fs', './c.js', 'node:dgram', 'net']);
});

test('the sans-IO rule catches planted violations and ignores comments and strings', () => {
  const bad: Record<string, string> = {
    "import { readFileSync } from 'node:fs';": 'imports node:fs',
    "import * as dgram from 'dgram';": 'imports dgram',
    "import * as tp from 'node:timers/promises';": 'imports node:timers/promises',
    "const os = await import('node:os');": 'imports node:os',
    'const t = Date.now();': 'Date.now',
    'const t = new Date();': 'new Date()',
    'const t = new Date;': 'new Date()',
    'const now = Date.now;': 'Date.now',
    'setTimeout(f, 10);': 'setTimeout',
    'globalThis.setInterval(f, 10);': 'setInterval',
    'setImmediate(f);': 'setImmediate',
    'const t = performance.now();': 'performance.now',
    'const t = process.hrtime.bigint();': 'hrtime',
    'const x = Math.random();': 'Math.random',
    "const url = 'http://example'; const x = Math.random();": 'Math.random', // a `//` in a string hides nothing
    "const re = /'/; const t = Date.now();": 'Date.now', // nor does a quote in a regex
    'const s = `at ${Date.now()}`;': 'Date.now', // template code is code
    'const h = 1 / 2; setTimeout(f, h / 3);': 'setTimeout', // division is not a regex
  };
  for (const [src, what] of Object.entries(bad)) {
    const v = sansIoViolations('crypto/planted.ts', src);
    assert.equal(v.length, 1, `${src} → ${JSON.stringify(v)}`);
    assert.ok(v[0]!.startsWith('crypto/planted.ts') && v[0]!.includes(what), `${src} → ${v[0]}`);
  }
  const fine = [
    '// Date.now() and setTimeout are not used here',
    '/* new Date(), Math.random() */ const x = 1;',
    "const msg = 'never call Date.now() or setTimeout() here';",
    'const s = `no Math.random() in this text`;',
    "import { createHash } from 'node:crypto';",
    "import { join } from 'node:path';",
    'const iso = new Date(wall.nowMs()).toISOString();', // formats an injected time
    'socket.setTimeout(5);', // a method of some object, not the global timer
    'const fsName = "node:fs";',
  ];
  for (const src of fine) assert.deepEqual(sansIoViolations('wire/planted.ts', src), [], src);
  // Only the sans-IO folders are held to it.
  assert.deepEqual(sansIoViolations('core/clock.ts', 'setTimeout(f, 1); Date.now();'), []);
  assert.equal(sansIoViolations('nat/x.ts', "import 'node:net'").length, 1);
  assert.equal(sansIoViolations('transport/x.ts', 'setInterval(f, 1)').length, 1);
});

test('the node rule: timers only in driver.ts, clocks and Math.random only in env.ts', () => {
  const timer = 'const t = setTimeout(f, 10);';
  const clock = 'const t = Date.now(); const r = Math.random(); const d = new Date();';
  assert.deepEqual(nodeViolations('node/driver.ts', timer), []);
  assert.deepEqual(nodeViolations('node/env.ts', clock), []);
  assert.equal(nodeViolations('node/peers/noise-suite.ts', timer).length, 1);
  assert.equal(nodeViolations('node/driver.ts', clock).length, 3, 'the driver gets time from its Clock');
  assert.equal(nodeViolations('node/env.ts', timer).length, 1, 'env hands out Timers, it does not run them');
  assert.equal(nodeViolations('node/x.ts', "import { setTimeout } from 'node:timers';").length, 2);
  assert.deepEqual(nodeViolations('node/x.ts', '// setTimeout(f) was here; Date.now() too'), []);
  assert.deepEqual(nodeViolations('node/trust/machine.ts', 'const nowIso = () => new Date(wall.nowMs()).toISOString();'), []);
  assert.deepEqual(nodeViolations('services/x.ts', timer + clock), []);
  assert.match(nodeViolations('node/a/b.ts', '\n\nMath.random()')[0]!, /^node\/a\/b\.ts:3: Math\.random/);
});

test('the layer rule catches a planted upward import, not one in a comment', () => {
  const up = (spec: string): string => (spec.includes('/node/') ? 'node' : 'wire');
  assert.deepEqual(layerViolations('crypto/x.ts', "import { Daemon } from '../node/node.js';", up), ['crypto/x.ts imports node (../node/node.js)']);
  assert.deepEqual(layerViolations('crypto/x.ts', "// import { Daemon } from '../node/node.js';\nimport { a } from '../wire/a.js';", up), []);
  assert.deepEqual(layerViolations('gadgets/x.ts', '', up), ["gadgets/x.ts: folder 'gadgets' is not in the layout table"]);
});
