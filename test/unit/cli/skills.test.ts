// pilotctl skills: the SKILL.md covers every command of the catalogue, its examples are commands pilotctl
// accepts, and --install writes only where asked and never replaces a different file without --force.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { extractGlobals, parseCommandArgs } from '../../../src/cli/args.js';
import type { CliContext } from '../../../src/cli/command.js';
import { COMMANDS } from '../../../src/cli/main.js';
import { MCP_TOOLS } from '../../../src/cli/mcp.js';
import { SKILL_WORKFLOWS } from '../../../src/cli/skills.js';
import { pilotctl } from './helpers.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'pilot-skills-'));
}

/** Words of a shell line: '…' and "…" quoting, no expansion (enough for the examples). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  const re = /'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m !== null; m = re.exec(line)) words.push(m[1] ?? m[2] ?? m[3]!);
  return words;
}

test('skills prints a SKILL.md with front matter and every command and error code of the catalogue', async () => {
  const [ctxRun, json, text] = await Promise.all([pilotctl(['--json', 'context']), pilotctl(['--json', 'skills']), pilotctl(['skills'])]);
  assert.equal(ctxRun.code, 0, ctxRun.stderr);
  assert.equal(json.code, 0, json.stderr);
  const cat = (ctxRun.json!.data as { commands: Record<string, unknown>; error_codes: Record<string, string> });
  const data = json.json!.data as { name: string; description: string; skill: string };
  assert.equal(data.name, 'pilot');
  const skill = data.skill;
  assert.equal(text.code, 0, text.stderr);
  assert.equal(text.stdout, skill, 'text mode prints the same SKILL.md');

  const fm = /^---\nname: ([a-z0-9-]+)\ndescription: (.+)\n---\n/.exec(skill);
  assert.ok(fm, 'YAML front matter with name and description first');
  assert.equal(fm[1], 'pilot');
  assert.equal(fm[2], data.description);
  assert.ok(fm[2]!.length <= 1024, 'description fits harness limits');
  // Front matter values are unquoted: a plain YAML scalar has no ': ' or ' #' and starts with no indicator.
  assert.doesNotMatch(fm[2]!, /: | #|^[-?:,[\]{}#&*!|>'"%@`]/, 'description is a plain YAML scalar');

  const names = Object.keys(cat.commands);
  assert.ok(names.includes('skills') && names.includes('mcp'), 'both commands are in the catalogue');
  for (const n of names) assert.ok(skill.includes(`#### pilotctl ${n}\n`), `SKILL.md documents ${n}`);
  for (const code of Object.keys(cat.error_codes)) assert.ok(skill.includes(`| \`${code}\` |`), `SKILL.md lists error ${code}`);
  for (const t of MCP_TOOLS) assert.ok(skill.includes(`| \`${t.name}\` | \`pilotctl ${t.command}\` |`), `SKILL.md maps MCP tool ${t.name}`);
  assert.match(skill, /\{"status":"ok","data":\{…\}\}/);
  assert.match(skill, /\{"status":"error","code":"…","message":"…","hint":"…"\}/);
});

test('every example in the SKILL.md is a command line pilotctl accepts', () => {
  const ctx = {
    io: { stdout: new Writable(), stderr: new Writable(), stdin: Readable.from([]), stdinIsTTY: true, stderrIsTTY: false, env: {}, cwd: process.cwd(), scriptPath: '' },
    isJson: true,
    home: '/nonexistent',
    socketPath: '/nonexistent/pilot.sock',
    timeoutMs: undefined,
    globals: new Map(),
    client: () => assert.fail('parse must not contact the daemon'),
    signal: new AbortController().signal,
  } as unknown as CliContext;
  let checked = 0;
  for (const w of SKILL_WORKFLOWS) {
    for (const line of w.lines) {
      if (line.startsWith('#')) continue;
      const words = shellWords(line);
      assert.equal(words[0], 'pilotctl', line);
      const split = extractGlobals(words.slice(1));
      assert.ok(split.ok, line);
      const rest = split.value.rest;
      const two = COMMANDS.find((c) => c.name === `${rest[0]} ${rest[1]}`);
      const cmd = two ?? COMMANDS.find((c) => c.name === rest[0]);
      assert.ok(cmd, `unknown command in example: ${line}`);
      const parsed = parseCommandArgs(rest.slice(two ? 2 : 1), cmd.args, cmd.flags, cmd.name);
      assert.ok(parsed.ok, `${line}: ${parsed.ok ? '' : parsed.error.message}`);
      const p = cmd.parse(parsed.value, ctx);
      assert.ok(p.ok, `${line}: ${p.ok ? '' : p.error.message}`);
      checked++;
    }
  }
  assert.ok(checked >= 15, `checked ${checked} examples`);
});

test('skills --install writes DIR/pilot/SKILL.md, leaves an equal file, refuses a different one without --force', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const printed = ((await pilotctl(['--json', 'skills'])).json!.data as { skill: string }).skill;
  assert.deepEqual(readdirSync(dir), [], 'printing wrote nothing');

  const first = await pilotctl(['--json', 'skills', '--install', dir]);
  assert.equal(first.code, 0, first.stderr);
  const path = join(dir, 'pilot', 'SKILL.md');
  assert.deepEqual(first.json!.data, { name: 'pilot', path, status: 'written', bytes: Buffer.byteLength(printed) });
  assert.equal(readFileSync(path, 'utf8'), printed);

  // Relative to the working directory, and idempotent.
  const again = await pilotctl(['--json', 'skills', '--install', '.'], { cwd: dir });
  assert.equal(again.code, 0, again.stderr);
  assert.equal((again.json!.data as { status: string; path: string }).status, 'unchanged');
  assert.equal((again.json!.data as { path: string }).path, join(dir, 'pilot', 'SKILL.md'));

  writeFileSync(path, 'my own notes\n');
  const refused = await pilotctl(['--json', 'skills', '--install', dir]);
  assert.equal(refused.code, 1);
  assert.equal(refused.stdout, '');
  assert.equal(refused.json!.status, 'error');
  assert.equal(refused.json!.code, 'already_exists');
  assert.match(String(refused.json!.hint), /--force/);
  assert.equal(readFileSync(path, 'utf8'), 'my own notes\n', 'nothing replaced');

  const forced = await pilotctl(['--json', 'skills', '--install', dir, '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal((forced.json!.data as { status: string }).status, 'replaced');
  assert.equal(readFileSync(path, 'utf8'), printed);

  const text = await pilotctl(['skills', '--install', dir]);
  assert.equal(text.code, 0, text.stderr);
  assert.equal(text.stdout, `already up to date: ${path}\n`);
});

test('skills usage errors exit 2 and write nothing', async (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const args of [['skills', '--force'], ['skills', '--install'], ['skills', '--install='], ['skills', 'extra']]) {
    const r = await pilotctl(['--json', ...args], { cwd: dir });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.json!.code, 'invalid_argument');
    assert.equal(typeof r.json!.hint, 'string');
  }
  assert.deepEqual(readdirSync(dir), []);
});
