// Every command's help shows real examples: each command in the table has one, and every example line is
// accepted by the parser exactly as pilotctl would take it (globals, the command, its arguments and flags, and
// the command's own checks) — so an example cannot name a flag that does not exist or an invalid value.
import test from 'node:test';
import assert from 'node:assert/strict';
import { extractGlobals, parseCommandArgs } from '../../../src/cli/args.js';
import { EXAMPLES, examplesOf } from '../../../src/cli/examples.js';
import { COMMANDS } from '../../../src/cli/main.js';
import type { CliContext } from '../../../src/cli/command.js';
import { pilotctl } from './helpers.js';

/** Shell words of the `pilotctl …` part of an example line (quotes removed; stops at a shell operator). */
function pilotctlWords(line: string): string[] | null {
  const words: string[] = [];
  const re = /\s*(?:'([^']*)'|"([^"]*)"|([^\s'"|&;<>()]+)|([|&;<>()]+))/gy;
  let m: RegExpExecArray | null;
  let isStarted = false;
  while ((m = re.exec(line)) !== null && m[0] !== '') {
    if (m[4] !== undefined) {
      if (isStarted) break;
      continue;
    }
    const w = m[1] ?? m[2] ?? m[3]!;
    if (!isStarted) {
      if (w === 'pilotctl') isStarted = true;
      continue;
    }
    words.push(w);
  }
  return isStarted ? words : null;
}

const ctx = { io: { env: {}, cwd: process.cwd(), scriptPath: '/nonexistent/pilotctl.js' }, isJson: false, home: '/nonexistent', socketPath: '/nonexistent/pilot.sock', timeoutMs: undefined, globals: new Map() } as unknown as CliContext;

test('every command has one or two examples', () => {
  for (const c of COMMANDS) {
    const ex = examplesOf(c.name);
    assert.ok(ex.length >= 1 && ex.length <= 3, `${c.name}: ${ex.length} examples`);
  }
});

test('every example parses as its command', () => {
  for (const [name, lines] of Object.entries(EXAMPLES)) {
    const cmd = COMMANDS.find((c) => c.name === name);
    if (!cmd) continue; // a command another branch adds (mcp): checked once it is in the table
    for (const line of lines) {
      const argv = pilotctlWords(line);
      assert.ok(argv, `${name}: '${line}' does not run pilotctl`);
      const split = extractGlobals(argv);
      assert.ok(split.ok, `${line}: ${!split.ok && split.error.message}`);
      const rest = split.value.rest;
      const words: string[] = cmd.name.split(' ');
      assert.deepEqual(rest.slice(0, words.length), words, `'${line}' is an example of ${name}`);
      const parsed = parseCommandArgs(rest.slice(words.length), cmd.args, cmd.flags, cmd.name);
      assert.ok(parsed.ok, `${line}: ${!parsed.ok && parsed.error.message}`);
      const p = cmd.parse(parsed.value, ctx);
      assert.ok(p.ok, `${line}: ${!p.ok && p.error.message}`);
    }
  }
});

test('help <command> shows the examples; context lists them per command', async () => {
  const h = await pilotctl(['help', 'rendezvous', 'start']);
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stdout, /\nexamples:\n {2}pilotctl rendezvous start\n/);
  const t = await pilotctl(['ping', '--help']);
  assert.match(t.stdout, /examples:\n {2}pilotctl ping agent-b\n/);
  const c = await pilotctl(['context', '--json']);
  const cmds = (c.json as { data: { commands: Record<string, { examples: string[] }> } }).data.commands;
  for (const cmd of COMMANDS) assert.deepEqual(cmds[cmd.name]!.examples, examplesOf(cmd.name), cmd.name);
  const one = await pilotctl(['help', 'config', 'set', '--json']);
  assert.deepEqual((one.json as { data: { examples: string[] } }).data.examples, examplesOf('config set'));
});
