// `pilotctl policy` (issue 15), offline on a policy file (the language: src/policy/, docs/policy.md):
//   policy validate FILE                         parse + check; invalid_argument names FILE:line:column and why
//   policy test FILE --from A --to B --port P    may A reach B on port P, and by which rule
//   policy get NAME                              the network's policy, as the daemon's verified chain holds it
//   policy set NAME FILE                         validated here first, then signed (owner/admin) into the chain
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { err, ok, type Result } from '../core/result.js';
import { evaluate, parsePolicy, POLICY_MAX_BYTES, SERVICE_PORTS, subjectOf, type Policy, type Subject } from '../policy/index.js';
import { usageErr } from './args.js';
import { defineCommand, type Command } from './command.js';
import { escapeText, fields } from './output.js';

function readPolicyFile(path: string, shownName: string): Result<Policy> {
  const t = readPolicyText(path, shownName);
  return t.ok ? parsePolicy(t.value, shownName) : t;
}

function readPolicyText(path: string, shownName: string): Result<string> {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) return err('invalid_argument', `${shownName} is not a file`);
    if (st.size > POLICY_MAX_BYTES) return err('invalid_argument', `${shownName}: the policy is larger than ${POLICY_MAX_BYTES} bytes`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return err('not_found', `no such file: ${shownName}`, { hint: 'docs/policy.md has examples to start from' });
    return err('internal', `cannot read ${shownName}: ${(e as Error).message}`, { cause: e });
  }
  return ok(text);
}

const validate = defineCommand<{ path: string; name: string }>({
  name: 'policy validate',
  group: 'Audit and policy',
  summary: 'Check a network policy file: JSON, fields, selectors, ports; errors name FILE:line:column and the reason',
  args: [{ name: 'file', required: true, description: 'the policy (JSON)' }],
  flags: [],
  returns: 'path, valid, default, rules [{index, line, action, from, to, ports, services, text}]; invalid: invalid_argument with detail {line, column, problems [{path, line, column, reason}]}',
  errors: ['not_found', 'internal'],
  parse(a, ctx) {
    return ok({ path: resolve(ctx.io.cwd, a.positional[0]!), name: a.positional[0]! });
  },
  async run(_ctx, p) {
    const r = readPolicyFile(p.path, p.name);
    if (!r.ok) return r;
    const pol = r.value;
    const rules = pol.rules.map((x) => ({ index: x.index, line: x.line, action: x.action, from: x.from, to: x.to, ports: x.ports, services: x.services, text: x.text }));
    const text = `valid: ${pol.rules.length} rule${pol.rules.length === 1 ? '' : 's'}, default ${pol.default}\n` + pol.rules.map((x) => `  ${String(x.index + 1).padStart(3)}. line ${x.line}: ${escapeText(x.text)}\n`).join('');
    return ok({ data: { path: p.path, valid: true, default: pol.default, rules }, text });
  },
});

function list(v: string | true | undefined): string[] {
  return typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s.length > 0) : [];
}

interface TestParams {
  path: string;
  name: string;
  from: Subject;
  to: Subject;
  port: number;
  fromRef: string;
  toRef: string;
}

const policyTest = defineCommand<TestParams>({
  name: 'policy test',
  group: 'Audit and policy',
  summary: 'May A reach B on port P under this policy file, and by which rule (first match wins, then the default)',
  args: [{ name: 'file', required: true, description: 'the policy (JSON)' }],
  flags: [
    { name: 'from', kind: 'string', value: '<node>', description: 'the connecting node: hostname, node id or address' },
    { name: 'to', kind: 'string', value: '<node>', description: 'the node it connects to: hostname, node id or address' },
    { name: 'port', kind: 'string', value: '<port|service>', description: 'the port (0–65535) or a service name (dataexchange, echo, …)' },
    { name: 'from-tags', kind: 'string', value: '<t1,t2>', description: "the connecting node's tags" },
    { name: 'from-role', kind: 'string', value: '<r1,r2>', description: "the connecting node's role(s) in the network" },
    { name: 'to-tags', kind: 'string', value: '<t1,t2>', description: "the reached node's tags" },
    { name: 'to-role', kind: 'string', value: '<r1,r2>', description: "the reached node's role(s) in the network" },
  ],
  returns: 'allow, action, rule_index (null = default), rule (the rule as written, or "default: …"), line, reason, from, to, port',
  errors: ['not_found', 'internal'],
  parse(a, ctx) {
    const fromRef = a.flags.get('from');
    const toRef = a.flags.get('to');
    const portText = a.flags.get('port');
    if (typeof fromRef !== 'string') return usageErr('missing --from <node>', 'policy test');
    if (typeof toRef !== 'string') return usageErr('missing --to <node>', 'policy test');
    if (typeof portText !== 'string') return usageErr('missing --port <port|service>', 'policy test');
    let port: number;
    if (/^\d{1,5}$/.test(portText) && Number(portText) <= 65535) port = Number(portText);
    else if (Object.prototype.hasOwnProperty.call(SERVICE_PORTS, portText)) port = SERVICE_PORTS[portText]!;
    else return usageErr(`invalid --port '${portText}': 0–65535 or a service (${Object.keys(SERVICE_PORTS).join(', ')})`, 'policy test');
    const from = subjectOf(fromRef, list(a.flags.get('from-tags')), list(a.flags.get('from-role')));
    if (!from.ok) return from;
    const to = subjectOf(toRef, list(a.flags.get('to-tags')), list(a.flags.get('to-role')));
    if (!to.ok) return to;
    return ok({ path: resolve(ctx.io.cwd, a.positional[0]!), name: a.positional[0]!, from: from.value, to: to.value, port, fromRef, toRef });
  },
  async run(_ctx, p) {
    const r = readPolicyFile(p.path, p.name);
    if (!r.ok) return r;
    const d = evaluate(r.value, p.from, p.to, p.port);
    const data = { ...d, from: p.from, to: p.to, port: p.port };
    const text = `${d.allow ? 'allow' : 'deny'}: ${escapeText(p.fromRef)} → ${escapeText(p.toRef)} port ${p.port}\n` + fields([['by', d.rule_index === null ? 'the default' : `rule ${d.rule_index + 1} (line ${d.line})`], ['rule', d.rule]]);
    return ok({ data, text });
  },
});

interface NetPolicyResult {
  network_id: number;
  name: string;
  policy?: string | null;
  sha256: string | null;
  seq: number | null;
  rules: number;
  default?: string | null;
}

const get = defineCommand<{ name: string }>({
  name: 'policy get',
  group: 'Audit and policy',
  summary: "Show a network's policy (the text its owner or an admin signed into the network's chain)",
  args: [{ name: 'network', required: true }],
  flags: [],
  returns: 'network_id, name, policy (the text; null = no policy: membership alone decides), sha256, seq (the chain change that set it), rules, default',
  errors: ['not_found', 'not_running', 'connection_failed'],
  parse(a) {
    return ok({ name: a.positional[0]! });
  },
  async run(ctx, p) {
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.network({ op: 'policy_get', name: p.name });
    if (!r.ok) return r;
    const d = r.value as NetPolicyResult;
    const text = d.policy ? `${d.policy}${d.policy.endsWith('\n') ? '' : '\n'}` : `network ${escapeText(d.name)} has no policy (members may reach each other on every port)\n`;
    return ok({ data: d, text });
  },
});

const set = defineCommand<{ name: string; path: string; file: string }>({
  name: 'policy set',
  group: 'Audit and policy',
  summary: "Set a network's policy (owner or admin): validated here, signed into the network's chain, enforced by every member within ~1 s",
  args: [
    { name: 'network', required: true },
    { name: 'file', required: true, description: 'the policy (JSON; docs/policy.md); an empty file clears the policy' },
  ],
  flags: [],
  returns: 'network_id, name, sha256 (null = cleared), seq, rules',
  errors: ['not_found', 'permission_denied', 'not_running', 'connection_failed', 'internal'],
  parse(a, ctx) {
    return ok({ name: a.positional[0]!, path: resolve(ctx.io.cwd, a.positional[1]!), file: a.positional[1]! });
  },
  async run(ctx, p) {
    const t = readPolicyText(p.path, p.file);
    if (!t.ok) return t;
    // Validated before anything is signed or sent: invalid_argument names FILE:line:column (an empty file clears).
    const isEmpty = t.value.trim() === '';
    if (!isEmpty) {
      const pol = parsePolicy(t.value, p.file);
      if (!pol.ok) return pol;
    }
    const c = await ctx.client();
    if (!c.ok) return c;
    const r = await c.value.network({ op: 'policy_set', name: p.name, policy: isEmpty ? '' : t.value });
    if (!r.ok) return r;
    const d = r.value as NetPolicyResult;
    const text = d.sha256 === null ? `policy of ${escapeText(d.name)} cleared (seq ${d.seq})\n` : `policy of ${escapeText(d.name)} set: ${d.rules} rule${d.rules === 1 ? '' : 's'}, sha256 ${d.sha256} (seq ${d.seq})\n`;
    return ok({ data: d, text });
  },
});

export const POLICY_COMMANDS: Command[] = [validate, policyTest, get, set];
