// `pilotctl completion bash|zsh|fish`: the scripts are run in the real shells. bash is loaded with
// `source <(pilotctl completion bash)` and driven through COMP_WORDS/COMP_CWORD; fish answers `complete -C`;
// zsh runs the function with compadd/_describe/_files standing in (they only work inside a completion widget).
// zsh and fish tests skip when those shells are not installed.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMANDS } from '../../../src/cli/main.js';
import { GLOBAL_FLAGS } from '../../../src/cli/args.js';
import { CONFIG_KEYS } from '../../../src/cli/config-cmd.js';
import { binCommand } from '../../helpers/bins.js';
import { pilotctl } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'pilot-compl-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function has(shell: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0;
}

async function script(shell: string): Promise<string> {
  const r = await pilotctl(['completion', shell]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

const bashScriptFile = (async () => {
  const p = join(dir, 'pilotctl.bash');
  writeFileSync(p, await script('bash'));
  return p;
})();

/** Run bash with the script loaded; each case is one COMP_WORDS line; returns COMPREPLY per case. */
async function bashComplete(cases: string[][]): Promise<string[][]> {
  const file = await bashScriptFile;
  const q = (w: string): string => `'${w.replace(/'/g, `'\\''`)}'`;
  let prog = `source ${q(file)}\n`;
  for (const words of cases) {
    prog += `COMP_WORDS=(${words.map(q).join(' ')}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _pilotctl; echo "\${COMPREPLY[*]}"\n`;
  }
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', prog], { encoding: 'utf8', cwd: dir });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', 'the script prints no errors');
  return r.stdout.split('\n').slice(0, cases.length).map((l) => (l === '' ? [] : l.split(' ')));
}

test('completion: unknown shell is a usage error; --json wraps the script', async () => {
  const bad = await pilotctl(['completion', 'tcsh', '--json']);
  assert.equal(bad.code, 2);
  assert.equal((bad.json as { code: string }).code, 'invalid_argument');
  const j = await pilotctl(['completion', 'fish', '--json']);
  assert.equal(j.code, 0);
  const d = (j.json as { data: { shell: string; script: string } }).data;
  assert.equal(d.shell, 'fish');
  assert.match(d.script, /complete -c pilotctl/);
});

test('bash: `source <(pilotctl completion bash); complete -p pilotctl` registers the function', () => {
  const pilotctlCmd = binCommand('pilotctl').map((w) => `'${w}'`).join(' ');
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `source <(${pilotctlCmd} completion bash); complete -p pilotctl`], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'complete -F _pilotctl pilotctl');
});

test('bash: commands, subcommands, flags, flag values and argument values', async () => {
  writeFileSync(join(dir, 'report.txt'), 'x');
  const cases: Array<[string[], (got: string[]) => void]> = [
    [['pilotctl', ''], (g) => ['daemon', 'rendezvous', 'info', 'config', 'completion', 'help'].forEach((w) => assert.ok(g.includes(w), w))],
    [['pilotctl', 'da'], (g) => assert.deepEqual(g, ['daemon'])],
    [['pilotctl', 'daemon', ''], (g) => assert.deepEqual(g, ['start', 'stop', 'status'])],
    [['pilotctl', 'rendezvous', 'st'], (g) => assert.deepEqual(g, ['start', 'stop', 'status'])],
    [['pilotctl', 'config', ''], (g) => assert.deepEqual(g, ['get', 'set', 'unset', 'show'])],
    [['pilotctl', 'daemon', 'start', '--reg'], (g) => assert.deepEqual(g, ['--registry', '--registry-fingerprint'])],
    [['pilotctl', 'daemon', 'start', '--log-level', ''], (g) => assert.deepEqual(g, ['debug', 'info', 'warn', 'error'])],
    // Global flags and flag values before the command are skipped.
    [['pilotctl', '--home', '/tmp', '--json', 'daemon', 'start', '--registry', '10.0.0.1:9000', '--host'], (g) => assert.deepEqual(g, ['--hostname'])],
    [['pilotctl', 'rendezvous', 'start', '--'], (g) => ['--registry-addr', '--beacon-addr', '--json', '--home'].forEach((w) => assert.ok(g.includes(w), w))],
    [['pilotctl', 'ping', 'agent-b', '--c'], (g) => assert.deepEqual(g, ['--count'])],
    [['pilotctl', 'send-message', 'agent-b', '--type', ''], (g) => assert.deepEqual(g, ['text', 'json', 'binary'])],
    [['pilotctl', 'completion', ''], (g) => assert.deepEqual(g, ['bash', 'zsh', 'fish'])],
    [['pilotctl', 'config', 'get', 'reg'], (g) => assert.deepEqual(g, ['registry', 'registry_fingerprint'])],
    [['pilotctl', 'config', 'set', 'log_l'], (g) => assert.deepEqual(g, ['log_level'])],
    [['pilotctl', 'help', 'rend'], (g) => assert.deepEqual(g, ['rendezvous'])],
    [['pilotctl', 'help', 'daemon', ''], (g) => assert.deepEqual(g, ['start', 'stop', 'status'])],
    [['pilotctl', 'send-file', 'agent-b', 'rep'], (g) => assert.deepEqual(g, ['report.txt'])],
    [['pilotctl', 'info', ''], (g) => assert.deepEqual(g, [])],
  ];
  const got = await bashComplete(cases.map((c) => c[0]));
  cases.forEach(([words, check], i) => {
    try {
      check(got[i]!);
    } catch (e) {
      throw new Error(`${words.join(' ')} → [${got[i]!.join(' ')}]: ${(e as Error).message}`);
    }
  });
});

test('bash: every command of the table completes, with all its flags and the global ones', async () => {
  const cases: string[][] = [];
  for (const c of COMMANDS) cases.push(['pilotctl', ...c.name.split(' '), '--']);
  const tops = [...new Set(COMMANDS.map((c) => c.name.split(' ')[0]!))];
  cases.push(['pilotctl', '']);
  const got = await bashComplete(cases);
  COMMANDS.forEach((c, i) => {
    for (const f of [...c.flags, ...GLOBAL_FLAGS]) assert.ok(got[i]!.includes(`--${f.name}`), `${c.name}: --${f.name} missing from [${got[i]!.join(' ')}]`);
    assert.equal(got[i]!.length, c.flags.length + GLOBAL_FLAGS.length, `${c.name}: only its own flags`);
  });
  assert.deepEqual(got[COMMANDS.length]!.sort(), tops.sort());
});

test('fish: complete -C answers from the script', { skip: has('fish') ? false : 'fish is not installed' }, async () => {
  const file = join(dir, 'pilotctl.fish');
  writeFileSync(file, await script('fish'));
  const ask = (line: string): string[] => {
    const r = spawnSync('fish', ['--no-config', '-c', `source ${file}; complete -C '${line}'`], { encoding: 'utf8', cwd: dir });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t')[0]!);
  };
  assert.deepEqual(ask('pilotctl daemon ').sort(), ['start', 'status', 'stop']);
  assert.deepEqual(ask('pilotctl config ').sort(), ['get', 'set', 'show', 'unset']);
  assert.deepEqual(ask('pilotctl daemon start --reg'), ['--registry', '--registry-fingerprint']);
  assert.deepEqual(ask('pilotctl daemon start --log-level ').sort(), ['debug', 'error', 'info', 'warn']);
  assert.deepEqual(ask('pilotctl --home /tmp completion ').sort(), ['bash', 'fish', 'zsh']);
  assert.deepEqual(ask('pilotctl config get registry_f'), ['registry_fingerprint']);
  assert.deepEqual(ask('pilotctl help daemon ').sort(), ['start', 'status', 'stop']);
  assert.ok(ask('pilotctl ').includes('rendezvous'));
});

test('zsh: the script loads under compinit and offers the same words', { skip: has('zsh') ? false : 'zsh is not installed' }, async () => {
  const file = join(dir, '_pilotctl');
  writeFileSync(file, await script('zsh'));
  const prog = `autoload -U compinit; compinit -u -d ${dir}/zcompdump; source ${file}; print -r -- "comps=\${_comps[pilotctl]}"
compadd() { print -r -- "compadd $*"; }
_files() { print -r -- "_files $*"; }
_describe() { local a; for a in "$@"; do [[ $a == reply || $a == __pilotctl_* ]] || continue; local -a arr; arr=("\${(@P)a}"); print -r -- describe \${arr%%:*}; done; }
t() { words=("$@"); CURRENT=\${#words}; print -r -- "== $*"; _pilotctl; }
t pilotctl daemon ''
t pilotctl daemon start --log-level ''
t pilotctl completion ''
t pilotctl config get ''
t pilotctl send-file agent-b ''
`;
  const r = spawnSync('zsh', ['-f', '-c', prog], { encoding: 'utf8', cwd: dir });
  assert.equal(r.status, 0, r.stderr);
  const out = r.stdout;
  assert.match(out, /comps=_pilotctl/);
  assert.match(out, /== pilotctl daemon \n(describe .*\n)*describe start stop status\n/);
  assert.match(out, /== pilotctl daemon start --log-level \ncompadd -- debug info warn error\n/);
  assert.match(out, /== pilotctl completion \ncompadd -- bash zsh fish\n/);
  assert.match(out, new RegExp(`== pilotctl config get \\ncompadd -- ${CONFIG_KEYS.map((k) => k.key).join(' ')}\\n`));
  assert.match(out, /== pilotctl send-file agent-b \n_files \n/);
});
