// A network's policy (issue 15): rules over members' tags, roles, hostnames and node ids, ports and services,
// allow or deny; the first rule that matches decides, else the default. Pure and total: parsePolicy takes any
// text (hostile included: size, count and depth limits) and returns a Policy or `invalid_argument` naming
// file:line:column and the reason for every problem it found (up to MAX_PROBLEMS); evaluate never fails.
//
//   {"default": "allow",
//    "rules": [
//      {"action": "deny", "ports": [1001], "from": "*", "to": "*"},
//      {"action": "allow", "from": ["tag:ci", "role:admin"], "to": "builder", "services": ["dataexchange"]},
//      {"action": "deny", "from": "*", "to": "tag:gpu", "ports": ["1000-1999", 7], "comment": "no one on the GPUs"}
//    ]}
//
// Selectors (`from`, `to`: one or a list; absent = "*"): "*", a hostname, a node id (12 or "12"), a virtual
// address ("0:0000.0000.000C"), "tag:NAME", "role:NAME". Ports: numbers, "A-B" ranges, or "*"; `services`
// names well-known ports (SERVICE_PORTS). A rule with neither ports nor services matches every port; with
// both, a port in either matches. Docs and examples: docs/policy.md.
import { err, ok, type Result } from '../core/result.js';
import { findJsonSyntaxError } from '../core/json-text.js';
import { hostnameProblem } from '../wire/hostname.js';
import { parseAddr } from '../wire/address.js';
import { jsonPositions, lineColumn } from './json-positions.js';

export const POLICY_MAX_BYTES = 1024 * 1024;
export const POLICY_MAX_RULES = 10_000;
/** Selectors per side, port entries and services per rule. */
export const POLICY_MAX_LIST = 1024;
export const POLICY_MAX_DEPTH = 16;
export const POLICY_MAX_COMMENT_CHARS = 1024;
/** Problems reported at once. */
export const MAX_PROBLEMS = 20;

/** Service names a rule may use instead of port numbers (src/wire/address.ts). */
export const SERVICE_PORTS: Readonly<Record<string, number>> = {
  ping: 0,
  control: 1,
  echo: 7,
  nameserver: 53,
  http: 80,
  secure: 443,
  handshake: 444,
  stdio: 1000,
  dataexchange: 1001,
  eventstream: 1002,
  tasksubmit: 1003,
};

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export type Action = 'allow' | 'deny';

export type Selector =
  | { kind: 'any' }
  | { kind: 'host'; name: string }
  | { kind: 'node'; id: number }
  | { kind: 'tag'; name: string }
  | { kind: 'role'; name: string };

export interface PortRange {
  from: number;
  to: number;
}

export interface PolicyRule {
  /** 0-based position in `rules`. */
  index: number;
  action: Action;
  from: Selector[];
  to: Selector[];
  /** null = every port. */
  ports: PortRange[] | null;
  services: string[];
  comment: string | null;
  /** The rule as written, compact JSON (what `policy test` shows). */
  text: string;
  /** 1-based line of the rule in the source text. */
  line: number;
}

export interface Policy {
  default: Action;
  rules: PolicyRule[];
  comment: string | null;
}

/** Who is asking or being reached: what the network knows of a member. */
export interface Subject {
  node_id?: number | null;
  hostname?: string | null;
  tags?: readonly string[];
  roles?: readonly string[];
}

export interface Decision {
  allow: boolean;
  action: Action;
  /** 0-based index of the rule that decided, null = the default. */
  rule_index: number | null;
  /** The deciding rule as written, or `default: allow|deny`. */
  rule: string;
  /** Its line in the policy file, null for the default. */
  line: number | null;
  reason: string;
}

export interface PolicyProblem {
  /** JSON path of the offending value ('rules[1].action'), '' for the document. */
  path: string;
  line: number;
  column: number;
  reason: string;
}

/**
 * Parse and validate a policy document. `name` is the file name used in messages. Errors: invalid_argument
 * with message `name:line:column: path: reason` for the first problem, and detail {path, line, column,
 * problems: [{path, line, column, reason}, …]}. Pure; never throws.
 */
export function parsePolicy(text: string, name = 'policy'): Result<Policy> {
  if (typeof text !== 'string') return err('invalid_argument', `${name}: not text`);
  if (text.length > POLICY_MAX_BYTES || Buffer.byteLength(text, 'utf8') > POLICY_MAX_BYTES) {
    return err('invalid_argument', `${name}: the policy is larger than ${POLICY_MAX_BYTES} bytes`, { hint: 'split it, or use tags and roles instead of listing nodes one by one', detail: { path: name } });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    const at = findJsonSyntaxError(text);
    const line = at?.line ?? 1;
    const column = at?.column ?? 1;
    const reason = at?.reason ?? (e as Error).message;
    return err('invalid_argument', `${name}:${line}:${column}: ${reason}`, {
      hint: `fix line ${line} of ${name}: a policy is one JSON object, e.g. {"default":"allow","rules":[{"action":"deny","ports":[1001],"from":"*","to":"*"}]}`,
      detail: { path: name, line, column, line_text: at?.lineText ?? '', problems: [{ path: '', line, column, reason }] },
    });
  }
  if (depthOf(doc, 0) > POLICY_MAX_DEPTH) return problemsErr(name, [{ path: '', line: 1, column: 1, reason: `nested deeper than ${POLICY_MAX_DEPTH} levels` }]);
  const pos = jsonPositions(text);
  const problems: PolicyProblem[] = [];
  const at = (path: string, reason: string): void => {
    if (problems.length >= MAX_PROBLEMS) return;
    // The closest enclosing value that has a position (a missing field: its object).
    let p = path;
    while (!pos.offsets.has(p) && p !== '') {
      const up = p.replace(/(?:^|\.)[^.[\]]*$|\[\d+\]$/, '');
      p = up === p ? '' : up;
    }
    const { line, column } = lineColumn(text, pos.offsets.get(p) ?? 0);
    problems.push({ path, line, column, reason });
  };
  for (const d of pos.duplicates) {
    const { line, column } = lineColumn(text, d.offset);
    if (problems.length < MAX_PROBLEMS) problems.push({ path: d.path, line, column, reason: `'${d.path.split('.').pop()}' is given twice (JSON keeps only the last one)` });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    at('', `a policy is a JSON object, not ${Array.isArray(doc) ? 'an array' : doc === null ? 'null' : typeof doc}`);
    return problemsErr(name, problems);
  }
  const o = doc as Record<string, unknown>;
  unknownFields(o, '', ['default', 'rules', 'comment', 'version'], at);
  if (o.version !== undefined && o.version !== 1) at('version', `unknown policy version ${JSON.stringify(o.version)} (this node reads version 1)`);
  let dflt: Action = 'allow';
  if (o.default === undefined) at('default', `"default" is missing: say what happens when no rule matches ("allow" or "deny")`);
  else if (o.default !== 'allow' && o.default !== 'deny') at('default', `"default" must be "allow" or "deny", not ${shown(o.default)}`);
  else dflt = o.default;
  const comment = commentOf(o.comment, 'comment', at);
  const rules: PolicyRule[] = [];
  if (o.rules === undefined) {
    /* no rules: the default decides */
  } else if (!Array.isArray(o.rules)) at('rules', `"rules" must be a list of rules, not ${shown(o.rules)}`);
  else if (o.rules.length > POLICY_MAX_RULES) at('rules', `at most ${POLICY_MAX_RULES} rules (found ${o.rules.length})`);
  else {
    o.rules.forEach((r, i) => {
      const rule = parseRule(r, i, `rules[${i}]`, at, text, pos.offsets);
      if (rule) rules.push(rule);
    });
  }
  if (problems.length > 0) return problemsErr(name, problems);
  return ok({ default: dflt, rules, comment });
}

function problemsErr(name: string, problems: PolicyProblem[]): Result<Policy> {
  const f = problems[0]!;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})` : '';
  return err('invalid_argument', `${name}:${f.line}:${f.column}: ${f.path ? f.path + ': ' : ''}${f.reason}${more}`, {
    hint: `fix line ${f.line} of ${name}; docs/policy.md shows the format (pilotctl policy validate ${name} checks it)`,
    detail: { path: name, line: f.line, column: f.column, problems },
  });
}

function depthOf(v: unknown, d: number): number {
  if (d > POLICY_MAX_DEPTH) return d;
  if (Array.isArray(v)) return v.reduce((m: number, x) => Math.max(m, depthOf(x, d + 1)), d + 1);
  if (typeof v === 'object' && v !== null) return Object.values(v).reduce((m: number, x) => Math.max(m, depthOf(x, d + 1)), d + 1);
  return d;
}

function shown(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? s.slice(0, 37) + '…' : s;
}

type At = (path: string, reason: string) => void;

function unknownFields(o: Record<string, unknown>, path: string, known: string[], at: At): void {
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue;
    const near = known.find((x) => editDistance(x, k) <= 2);
    at(path ? `${path}.${k}` : k, `unknown field '${k}'${near ? ` (did you mean '${near}'?)` : ''}; known: ${known.join(', ')}`);
  }
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2 || a.length > 32 || b.length > 32) return 99;
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length]![b.length]!;
}

function commentOf(v: unknown, path: string, at: At): string | null {
  if (v === undefined) return null;
  if (typeof v !== 'string') {
    at(path, `"comment" must be text, not ${shown(v)}`);
    return null;
  }
  if (v.length > POLICY_MAX_COMMENT_CHARS) at(path, `"comment" is longer than ${POLICY_MAX_COMMENT_CHARS} characters`);
  return v;
}

function parseRule(r: unknown, index: number, path: string, at: At, text: string, offsets: Map<string, number>): PolicyRule | null {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) {
    at(path, `a rule is an object like {"action":"deny","ports":[1001],"from":"*","to":"*"}, not ${shown(r)}`);
    return null;
  }
  const o = r as Record<string, unknown>;
  let bad = false;
  const atR: At = (p, reason) => {
    bad = true;
    at(p, reason);
  };
  unknownFields(o, path, ['action', 'from', 'to', 'ports', 'services', 'comment'], atR);
  let action: Action = 'deny';
  if (o.action === undefined) atR(`${path}.action`, `"action" is missing ("allow" or "deny")`);
  else if (o.action !== 'allow' && o.action !== 'deny') atR(`${path}.action`, `"action" must be "allow" or "deny", not ${shown(o.action)}`);
  else action = o.action;
  const from = selectors(o.from, `${path}.from`, atR);
  const to = selectors(o.to, `${path}.to`, atR);
  const ports = o.ports === undefined || o.ports === '*' ? null : portList(o.ports, `${path}.ports`, atR);
  const services: string[] = [];
  if (o.services !== undefined) {
    if (!Array.isArray(o.services)) atR(`${path}.services`, `"services" must be a list of service names, not ${shown(o.services)}`);
    else if (o.services.length > POLICY_MAX_LIST) atR(`${path}.services`, `at most ${POLICY_MAX_LIST} services`);
    else
      o.services.forEach((s, k) => {
        if (typeof s === 'string' && Object.prototype.hasOwnProperty.call(SERVICE_PORTS, s)) services.push(s);
        else atR(`${path}.services[${k}]`, `unknown service ${shown(s)}; known: ${Object.keys(SERVICE_PORTS).join(', ')}`);
      });
  }
  const comment = commentOf(o.comment, `${path}.comment`, atR);
  if (bad) return null;
  const portRanges = ports === null && services.length === 0 ? null : [...(ports ?? []), ...services.map((s) => ({ from: SERVICE_PORTS[s]!, to: SERVICE_PORTS[s]! }))];
  // A rule that lists services but no ports matches only the services' ports; `"ports":"*"` with services is still every port.
  const finalPorts = o.ports === '*' ? null : portRanges;
  return { index, action, from, to, ports: finalPorts, services, comment, text: JSON.stringify(o), line: lineColumn(text, offsets.get(path) ?? 0).line };
}

function selectors(v: unknown, path: string, at: At): Selector[] {
  if (v === undefined) return [{ kind: 'any' }];
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) {
    at(path, 'an empty list matches nobody: use "*" for everyone');
    return [];
  }
  if (list.length > POLICY_MAX_LIST) {
    at(path, `at most ${POLICY_MAX_LIST} selectors`);
    return [];
  }
  const out: Selector[] = [];
  list.forEach((s, k) => {
    const p = Array.isArray(v) ? `${path}[${k}]` : path;
    const r = parseSelector(s);
    if (r.ok) out.push(r.value);
    else at(p, r.error.message);
  });
  return out;
}

/** One selector: "*", hostname, node id, virtual address, "tag:NAME", "role:NAME". Pure. */
export function parseSelector(s: unknown): Result<Selector> {
  if (typeof s === 'number') {
    if (Number.isInteger(s) && s >= 0 && s <= 0xffffffff) return ok({ kind: 'node', id: s });
    return err('invalid_argument', `node id ${shown(s)} is not a whole number in 0..4294967295`);
  }
  if (typeof s !== 'string') return err('invalid_argument', `a selector is "*", a hostname, a node id, "tag:NAME" or "role:NAME", not ${shown(s)}`);
  if (s === '*') return ok({ kind: 'any' });
  for (const kind of ['tag', 'role'] as const) {
    if (s.startsWith(kind + ':')) {
      const name = s.slice(kind.length + 1);
      if (!NAME_RE.test(name)) return err('invalid_argument', `${kind} name ${shown(name)} must be 1–63 letters, digits, '.', '_' or '-'`);
      return ok({ kind, name });
    }
  }
  if (/^\d{1,10}$/.test(s)) {
    const id = Number(s);
    if (id <= 0xffffffff) return ok({ kind: 'node', id });
  }
  if (/^\d+:[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$/.test(s)) {
    const a = parseAddr(s);
    if (a.ok) return ok({ kind: 'node', id: a.value.node });
  }
  if (s.includes(':')) return err('invalid_argument', `unknown selector ${shown(s)}: prefixes are "tag:" and "role:"`);
  const why = hostnameProblem(s);
  if (why !== null) return err('invalid_argument', `${shown(s)} is neither "*", a node id, "tag:NAME", "role:NAME" nor a hostname (${why})`);
  return ok({ kind: 'host', name: s });
}

function portList(v: unknown, path: string, at: At): PortRange[] {
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) {
    at(path, 'an empty list matches no port: leave "ports" out (or "*") for every port');
    return [];
  }
  if (list.length > POLICY_MAX_LIST) {
    at(path, `at most ${POLICY_MAX_LIST} port entries`);
    return [];
  }
  const out: PortRange[] = [];
  list.forEach((p, k) => {
    const pp = Array.isArray(v) ? `${path}[${k}]` : path;
    const r = parsePortEntry(p);
    if (r.ok) out.push(r.value);
    else at(pp, r.error.message);
  });
  return out;
}

/** A port number, "A-B", or a numeric string. Pure. */
export function parsePortEntry(p: unknown): Result<PortRange> {
  const isPort = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 65535;
  if (typeof p === 'number') return isPort(p) ? ok({ from: p, to: p }) : err('invalid_argument', `port ${shown(p)} is not in 0..65535`);
  if (typeof p === 'string') {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(p);
    if (m) {
      const a = Number(m[1]);
      const b = m[2] === undefined ? a : Number(m[2]);
      if (!isPort(a) || !isPort(b)) return err('invalid_argument', `port range ${shown(p)} is not within 0..65535`);
      if (a > b) return err('invalid_argument', `port range ${shown(p)} runs backwards (write "${b}-${a}")`);
      return ok({ from: a, to: b });
    }
    if (Object.prototype.hasOwnProperty.call(SERVICE_PORTS, p)) return err('invalid_argument', `${shown(p)} is a service: put it in "services"`);
  }
  return err('invalid_argument', `a port is a number (1001) or a range ("1000-1999"), not ${shown(p)}`);
}

function matchesSelector(s: Selector, x: Subject): boolean {
  switch (s.kind) {
    case 'any':
      return true;
    case 'host':
      return x.hostname !== undefined && x.hostname !== null && x.hostname === s.name;
    case 'node':
      return x.node_id !== undefined && x.node_id !== null && x.node_id === s.id;
    case 'tag':
      return (x.tags ?? []).includes(s.name);
    case 'role':
      return (x.roles ?? []).includes(s.name);
  }
}

function matchesPort(r: PolicyRule, port: number): boolean {
  return r.ports === null || r.ports.some((p) => port >= p.from && port <= p.to);
}

/** May `from` reach `to` on `port`? First matching rule, else the default. Pure; never fails. */
export function evaluate(policy: Policy, from: Subject, to: Subject, port: number): Decision {
  for (const r of policy.rules) {
    if (!matchesPort(r, port)) continue;
    if (!r.from.some((s) => matchesSelector(s, from))) continue;
    if (!r.to.some((s) => matchesSelector(s, to))) continue;
    return { allow: r.action === 'allow', action: r.action, rule_index: r.index, rule: r.text, line: r.line, reason: `rule ${r.index + 1} (line ${r.line}) matches: ${r.action}` };
  }
  return { allow: policy.default === 'allow', action: policy.default, rule_index: null, rule: `default: ${policy.default}`, line: null, reason: `no rule matches: the default (${policy.default}) applies` };
}

/** A subject from CLI-ish text: a node id, an address, or a hostname, plus tags and roles. Errors: invalid_argument. */
export function subjectOf(ref: string, tags: readonly string[] = [], roles: readonly string[] = []): Result<Subject> {
  const s = parseSelector(/^\d{1,10}$/.test(ref) ? Number(ref) : ref);
  if (!s.ok || (s.value.kind !== 'node' && s.value.kind !== 'host')) {
    return err('invalid_argument', `'${ref}' is not a node id, address or hostname`, { hint: 'name the node by hostname (agent-b), node id (12) or address (0:0000.0000.000C); tags and roles go in --from-tags/--from-role' });
  }
  for (const t of [...tags, ...roles]) {
    if (!NAME_RE.test(t)) return err('invalid_argument', `tag or role '${t}' must be 1–63 letters, digits, '.', '_' or '-'`);
  }
  return ok({ ...(s.value.kind === 'node' ? { node_id: s.value.id } : { hostname: s.value.name }), tags: [...tags], roles: [...roles] });
}
