#!/usr/bin/env node
// netsim CLI: `up <scenario>`, `down`, `exec <host> <cmd…>`, `list`, `selftest`, `matrix` (every pair of NAT
// kinds with real daemons). Human text on stdout by default; `--json` prints {"status":"ok","data":…} like pilotctl.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { netsimUnavailableReason } from './exec.js';
import { formatEgressChecks, runEgressCheck } from './egress-check.js';
import { formatNatTable, runLinkCheck, runMappingTimeoutCheck, runNatSelftest, runPunchCheck, type PunchCase } from './selftest.js';
import { expectedPath, findScenario, matrixPairs, SCENARIOS } from './scenario.js';
import { buildTopology, teardownAll } from './topology.js';
import { parseNatKind, type NatKind } from './nat.js';
import { defaultResultsDir, matrixCells, matrixMarkdown, runMatrix, writeMatrixResults, type MatrixCell } from './matrix.js';
import { COMPAT_CELL_NAMES, isCompatCellName, runCompatCells, type CompatCellName } from './compat-cells.js';

const USAGE = `usage: netsim <command> [--json]
  up <scenario>        build a scenario topology and leave it up (see \`list\`; or <kindA>--<kindB>)
  down                 tear down every pn-* namespace, link process and lock (also other runs')
  exec <host> <cmd…>   run a command inside a host of the topology left up by \`up\`
  list                 list scenarios
  selftest [--quick]   check every NAT kind, UDP blocking and the HTTP proxy, the mapping timeout and link
                       impairment; prints a table
  matrix [--trials N] [--cells a--b,name,…] [--one-order] [--no-compat] [--out DIR]
                       NAT traversal matrix with real daemons: every pair of NAT kinds (both orders),
                       then the compat-transport cells (${COMPAT_CELL_NAMES.join(', ')});
                       connected/direct/relayed %, TTFB median/p95; writes matrix.md/.json/.svg (netsim/results)
`;

type Json = Record<string, unknown> | unknown[];

function main(argv: string[]): Promise<number> | number {
  const json = argv.includes('--json');
  const args = argv.filter((a) => a !== '--json');
  const cmd = args[0];
  const print = (text: string, data: Json) => {
    process.stdout.write(json ? JSON.stringify({ status: 'ok', data }) + '\n' : text + '\n');
  };
  const fail = (code: string, message: string, exitCode = 1): number => {
    if (json) process.stderr.write(JSON.stringify({ status: 'error', code, message }) + '\n');
    else process.stderr.write(`netsim: ${message}\n`);
    return exitCode;
  };
  const needRoot = (): string | null => netsimUnavailableReason();

  switch (cmd) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    case 'list': {
      const rows = Object.values(SCENARIOS);
      const w = Math.max(...rows.map((s) => s.name.length));
      print(
        rows.map((s) => `${s.name.padEnd(w)}  ${s.expect.padEnd(6)}  ${s.description}`).join('\n') +
          '\n(or any pair as <kindA>--<kindB>, e.g. full-cone--symmetric-sequential)',
        rows.map((s) => ({ name: s.name, expect: s.expect, description: s.description })),
      );
      return 0;
    }
    case 'matrix':
      return matrix(args.slice(1), json, fail, needRoot);
    case 'up':
      return up(args[1], print, fail, needRoot);
    case 'down': {
      const why = needRoot();
      if (why) return fail('internal', why);
      return teardownAll().then((removed) => {
        print(removed.length ? `removed ${removed.join(' ')}` : 'nothing to remove', { removed });
        return 0;
      });
    }
    case 'exec':
      return execIn(args[1], args.slice(2).filter((a, i) => !(i === 0 && a === '--')), fail, needRoot);
    case 'selftest':
      return selftest(args.includes('--quick'), json, fail, needRoot);
    default:
      process.stderr.write(USAGE);
      return fail('invalid_argument', `unknown command ${JSON.stringify(cmd)}`, 2);
  }
}

async function up(
  name: string | undefined,
  print: (text: string, data: Json) => void,
  fail: (code: string, message: string, exitCode?: number) => number,
  needRoot: () => string | null,
): Promise<number> {
  if (!name) return fail('invalid_argument', 'up needs a scenario name (netsim list)', 2);
  const scenario = findScenario(name);
  if (!scenario) return fail('invalid_argument', `unknown scenario ${JSON.stringify(name)} (netsim list)`, 2);
  const why = needRoot();
  if (why) return fail('internal', why);
  const built = await buildTopology({ ...scenario.spec, persist: true });
  if (!built.ok) return fail(built.error.code, built.error.message);
  const topo = built.value;
  const hosts = [...topo.hosts.values()].filter((h) => h.role !== 'internet');
  print(
    `scenario ${scenario.name}: ${scenario.description} (expect ${scenario.expect}); built in ${topo.buildMs.toFixed(0)} ms\n` +
      `${topo.describe()}\n\nrun:  npm run netsim -- exec <host> <cmd…>   (or ip netns exec <netns> <cmd…>)\n` +
      `stop: npm run netsim -- down`,
    { scenario: scenario.name, expect: scenario.expect, id: topo.id, buildMs: topo.buildMs, hosts },
  );
  return 0;
}

function execIn(
  host: string | undefined,
  argv: string[],
  fail: (code: string, message: string, exitCode?: number) => number,
  needRoot: () => string | null,
): number {
  if (!host || argv.length === 0) return fail('invalid_argument', 'exec needs <host> <cmd…>', 2);
  const why = needRoot();
  if (why) return fail('internal', why);
  const matches: string[] = [];
  let files: string[] = [];
  try {
    files = readdirSync('/run/pn-netsim').filter((f) => f.endsWith('.json'));
  } catch {
    // no topology up
  }
  for (const f of files) {
    try {
      const lock = JSON.parse(readFileSync(`/run/pn-netsim/${f}`, 'utf8')) as { persist: boolean; id: string; namespaces: string[] };
      if (!lock.persist) continue;
      const ns = `pn-${lock.id}-${host}`;
      if (lock.namespaces.includes(ns)) matches.push(ns);
    } catch {
      // unreadable lock: ignore
    }
  }
  if (matches.length === 0) return fail('not_found', `no host ${JSON.stringify(host)} in a topology left up by \`netsim up\``);
  if (matches.length > 1) return fail('invalid_argument', `host ${host} is in several topologies (${matches.join(', ')}); run netsim down first`);
  const r = spawnSync('ip', ['netns', 'exec', matches[0]!, ...argv], { stdio: 'inherit' });
  return r.status ?? 1;
}

async function selftest(
  quick: boolean,
  json: boolean,
  fail: (code: string, message: string, exitCode?: number) => number,
  needRoot: () => string | null,
): Promise<number> {
  const why = needRoot();
  if (why) return fail('internal', why);
  const out = (s: string) => {
    if (!json) process.stdout.write(s + '\n');
  };
  let isOk = true;
  const t0 = performance.now();
  const nat = await runNatSelftest();
  if (!nat.ok) return fail(nat.error.code, nat.error.message);
  out(formatNatTable(nat.value));
  isOk &&= nat.value.every((r) => r.pass);
  const data: Record<string, unknown> = { nat: nat.value };
  const egress = await runEgressCheck();
  if (!egress.ok) return fail(egress.error.code, egress.error.message);
  out(`\negress filters and HTTP proxy (compat transport):\n${formatEgressChecks(egress.value)}`);
  isOk &&= egress.value.every((c) => c.pass);
  data.egress = egress.value;
  if (!quick) {
    const timeout = await runMappingTimeoutCheck(2);
    if (!timeout.ok) return fail(timeout.error.code, timeout.error.message);
    out(
      `\nmapping timeout 2 s (full cone): inbound before expiry ${timeout.value.inboundBeforeExpiry ? 'yes' : 'no'}, ` +
        `after ${timeout.value.inboundAfterExpiry ? 'yes' : 'no'}, conntrack udp timeout ${timeout.value.conntrackTimeoutS} s ` +
        `-> ${timeout.value.pass ? 'PASS' : 'FAIL'}`,
    );
    isOk &&= timeout.value.pass;
    data.timeout = timeout.value;
    const delay = await runLinkCheck({ delayMs: 20 }, 20);
    if (!delay.ok) return fail(delay.error.code, delay.error.message);
    const rtt = delay.value.rttMedianMs;
    const delayPass = rtt !== null && rtt > 38 && rtt < 50;
    out(`link delay 20 ms each way: median UDP RTT ${rtt?.toFixed(1)} ms (want ~40) -> ${delayPass ? 'PASS' : 'FAIL'}`);
    const loss = await runLinkCheck({ lossPct: 20 }, 0, 1000, 1);
    if (!loss.ok) return fail(loss.error.code, loss.error.message);
    const got = loss.value.deliveredFraction ?? 0;
    const lossPass = got > 0.73 && got < 0.87;
    out(`link loss 20%: delivered ${(got * 100).toFixed(1)}% of 1000 (want ~80%) -> ${lossPass ? 'PASS' : 'FAIL'}`);
    isOk &&= delayPass && lossPass;
    data.delay = delay.value;
    data.loss = loss.value;
    const cases: PunchCase[] = [
      ...matrixPairs().map(([natA, natB]) => ({ natA, natB })),
      { natA: 'port-restricted-cone', natB: 'port-restricted-cone', sameNat: true, hairpin: true },
      { natA: 'port-restricted-cone', natB: 'port-restricted-cone', sameNat: true, hairpin: false },
    ];
    const punch = await runPunchCheck(cases, (c) => (c.sameNat ? (c.hairpin ? 'direct' : 'relay') : expectedPath(c.natA, c.natB)));
    if (!punch.ok) return fail(punch.error.code, punch.error.message);
    out('\nnaive hole punching (no port prediction):');
    for (const p of punch.value) {
      const got = p.isDirect ? 'direct' : 'relay';
      out(`  ${p.label.padEnd(46)} ${got.padEnd(6)} expected ${p.expected.padEnd(6)} ${got === p.expected ? 'PASS' : 'FAIL'}`);
      isOk &&= got === p.expected;
    }
    data.punch = punch.value;
  }
  out(`\n${isOk ? 'all passed' : 'FAILED'} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (json) process.stdout.write(JSON.stringify({ status: isOk ? 'ok' : 'error', data }) + '\n');
  return isOk ? 0 : 1;
}

async function matrix(
  argv: string[],
  json: boolean,
  fail: (code: string, message: string, exitCode?: number) => number,
  needRoot: () => string | null,
): Promise<number> {
  let trials = 1;
  let out = defaultResultsDir();
  let cells = matrixCells(!argv.includes('--one-order'));
  let compatCells: CompatCellName[] = argv.includes('--no-compat') ? [] : [...COMPAT_CELL_NAMES];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string | undefined => (a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i]);
    if (a === '--trials' || a.startsWith('--trials=')) {
      const v = Number(val());
      if (!Number.isInteger(v) || v < 1 || v > 1000) return fail('invalid_argument', '--trials needs an integer 1..1000', 2);
      trials = v;
    } else if (a === '--out' || a.startsWith('--out=')) {
      const v = val();
      if (!v) return fail('invalid_argument', '--out needs a directory', 2);
      out = v;
    } else if (a === '--cells' || a.startsWith('--cells=')) {
      const picked: [NatKind, NatKind][] = [];
      compatCells = [];
      for (const c of (val() ?? '').split(',').filter(Boolean)) {
        if (isCompatCellName(c)) {
          compatCells.push(c);
          continue;
        }
        const m = /^(.+)--(.+)$/.exec(c);
        const x = m ? parseNatKind(m[1]!) : null;
        const y = m ? parseNatKind(m[2]!) : null;
        if (!x || !y) return fail('invalid_argument', `bad cell ${JSON.stringify(c)} (want <kindA>--<kindB> or one of ${COMPAT_CELL_NAMES.join(', ')})`, 2);
        picked.push([x, y]);
      }
      cells = picked;
    } else if (a !== '--one-order' && a !== '--no-compat') {
      return fail('invalid_argument', `unknown matrix flag ${JSON.stringify(a)}`, 2);
    }
  }
  const why = needRoot();
  if (why) return fail('internal', why);
  const t0 = performance.now();
  const onCell = (c: MatrixCell) => {
    if (!json) {
      process.stderr.write(
        `${c.compat ?? `${c.natA} → ${c.natB}`}: connected ${c.connectedPct}% direct ${c.directPct}% relayed ${c.relayedPct}% ` +
          `ttfb ${c.ttfbMedianMs?.toFixed(0) ?? '–'} ms${c.results[0]?.error ? ` (${c.results[0].error.slice(0, 100)})` : ''}\n`,
      );
    }
  };
  const result = [...(await runMatrix({ trials, cells, onCell })), ...(await runCompatCells(compatCells, { trials, onCell }))];
  const meta = { trials, generated_at: new Date().toISOString(), elapsed_s: Math.round((performance.now() - t0) / 1000) };
  const files = writeMatrixResults(result, out, meta);
  if (json) process.stdout.write(JSON.stringify({ status: 'ok', data: { ...meta, files, cells: result } }) + '\n');
  else process.stdout.write(`${matrixMarkdown(result)}\n\nwrote ${files.join(', ')}\n`);
  return 0;
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
