// The policy language (src/policy): parse/validate with file:line:column and a reason, first match wins, the
// default, selectors, ports, services; total on hostile input.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { evaluate, parsePolicy, parseSelector, subjectOf, POLICY_MAX_BYTES, type Policy } from '../../../src/policy/index.js';

function policy(text: string): Policy {
  const p = parsePolicy(text, 'p.json');
  assert.ok(p.ok, p.ok ? '' : p.error.message);
  return p.value;
}

test("the issue's example parses and denies port 1001 for everyone, allows the rest", () => {
  const p = policy('{"default":"allow","rules":[{"action":"deny","ports":[1001],"from":"*","to":"*"}]}');
  const d = evaluate(p, { node_id: 1 }, { node_id: 2 }, 1001);
  assert.equal(d.allow, false);
  assert.equal(d.rule_index, 0);
  assert.equal(d.rule, '{"action":"deny","ports":[1001],"from":"*","to":"*"}');
  assert.equal(d.line, 1);
  const e = evaluate(p, { node_id: 1 }, { node_id: 2 }, 7);
  assert.equal(e.allow, true);
  assert.equal(e.rule_index, null);
  assert.equal(e.rule, 'default: allow');
});

const MULTI = `{
  "default": "deny",
  "comment": "ci may push to builders; nobody reaches the gpus except admins",
  "rules": [
    {"action": "allow", "from": "role:admin", "to": "tag:gpu"},
    {"action": "deny", "from": "*", "to": "tag:gpu"},
    {"action": "allow", "from": ["tag:ci", 12], "to": "builder", "services": ["dataexchange"]},
    {"action": "allow", "from": "*", "to": "*", "ports": ["1000-1999", 7]}
  ]
}`;

test('first match wins, then the default; tags, roles, hostnames, node ids, ranges and services', () => {
  const p = policy(MULTI);
  assert.equal(p.rules.length, 4);
  assert.deepEqual(p.rules.map((r) => r.line), [5, 6, 7, 8]);
  const admin = { node_id: 3, roles: ['admin'] };
  const gpu = { node_id: 4, tags: ['gpu'] };
  assert.equal(evaluate(p, admin, gpu, 1001).rule_index, 0);
  assert.equal(evaluate(p, admin, gpu, 1001).allow, true);
  // rule 1 shadows rule 3 for gpu nodes
  const d = evaluate(p, { node_id: 5 }, gpu, 1001);
  assert.equal(d.allow, false);
  assert.equal(d.rule_index, 1);
  assert.match(d.reason, /rule 2 \(line 6\)/);
  // services: dataexchange = 1001 only
  assert.equal(evaluate(p, { tags: ['ci'] }, { hostname: 'builder' }, 1001).rule_index, 2);
  assert.equal(evaluate(p, { node_id: 12 }, { hostname: 'builder' }, 1001).rule_index, 2);
  assert.equal(evaluate(p, { tags: ['ci'] }, { hostname: 'builder' }, 80).allow, false);
  assert.equal(evaluate(p, { tags: ['ci'] }, { hostname: 'builder' }, 80).rule_index, null);
  // ranges
  assert.equal(evaluate(p, { node_id: 9 }, { node_id: 10 }, 1999).rule_index, 3);
  assert.equal(evaluate(p, { node_id: 9 }, { node_id: 10 }, 2000).rule_index, null);
  assert.equal(evaluate(p, { node_id: 9 }, { node_id: 10 }, 7).allow, true);
});

test('selectors: *, hostname, node id (number, text, address), tag:, role:', () => {
  assert.deepEqual(parseSelector('*'), { ok: true, value: { kind: 'any' } });
  assert.deepEqual(parseSelector('agent-b'), { ok: true, value: { kind: 'host', name: 'agent-b' } });
  assert.deepEqual(parseSelector(12), { ok: true, value: { kind: 'node', id: 12 } });
  assert.deepEqual(parseSelector('12'), { ok: true, value: { kind: 'node', id: 12 } });
  assert.deepEqual(parseSelector('0:0000.0000.000C'), { ok: true, value: { kind: 'node', id: 12 } });
  assert.deepEqual(parseSelector('tag:gpu'), { ok: true, value: { kind: 'tag', name: 'gpu' } });
  assert.deepEqual(parseSelector('role:admin'), { ok: true, value: { kind: 'role', name: 'admin' } });
  for (const bad of ['Agent B', 'group:x', 'tag:', -1, 1.5, null, {}, 'tag:a b']) assert.equal(parseSelector(bad).ok, false, JSON.stringify(bad));
});

function problem(text: string): { message: string; line: number; column: number; problems: { path: string; reason: string }[] } {
  const p = parsePolicy(text, 'p.json');
  assert.equal(p.ok, false, `accepted: ${text}`);
  if (p.ok) throw new Error('unreachable');
  assert.equal(p.error.code, 'invalid_argument');
  const d = p.error.detail as { line: number; column: number; problems: { path: string; reason: string }[] };
  return { message: p.error.message, line: d.line, column: d.column, problems: d.problems };
}

test('syntax errors give file:line:column and what was expected', () => {
  const e = problem('{\n  "default": "allow",\n  "rules": [\n    {"action": "deny",}\n  ]\n}');
  assert.equal(e.line, 4);
  assert.match(e.message, /^p\.json:4:\d+: trailing comma/);
});

test('valid JSON, wrong policy: the line of the offending value and the reason', () => {
  const e = problem('{\n  "default": "allow",\n  "rules": [\n    {"action": "deny", "from": "*", "to": "*"},\n    {"action": "permit", "from": "*", "to": "*"}\n  ]\n}');
  assert.equal(e.line, 5);
  assert.equal(e.column, 16);
  assert.match(e.message, /^p\.json:5:16: rules\[1\]\.action: "action" must be "allow" or "deny", not "permit"/);

  const port = problem('{"default":"deny",\n"rules":[{"action":"allow",\n"ports":[80, 70000]}]}');
  assert.equal(port.line, 3);
  assert.match(port.message, /rules\[0\]\.ports\[1\]: port 70000 is not in 0\.\.65535/);

  const typo = problem('{"default":"deny","rules":[{"action":"allow","prots":[80]}]}');
  assert.match(typo.message, /unknown field 'prots' \(did you mean 'ports'\?\)/);

  const missing = problem('{"rules":[]}');
  assert.match(missing.message, /"default" is missing/);
  assert.equal(missing.line, 1);

  const sel = problem('{"default":"deny","rules":[{"action":"allow","from":["tag:ok","Bad Name"]}]}');
  assert.match(sel.message, /rules\[0\]\.from\[1\]: "Bad Name" is neither/);

  const svc = problem('{"default":"deny","rules":[{"action":"allow","services":["ftp"]}]}');
  assert.match(svc.message, /unknown service "ftp"/);

  const back = problem('{"default":"deny","rules":[{"action":"allow","ports":["2000-1000"]}]}');
  assert.match(back.message, /runs backwards/);

  const dup = problem('{"default":"deny","default":"allow"}');
  assert.match(dup.message, /'default' is given twice/);

  const many = problem('{"default":"maybe","rules":[{"action":"x"},{"action":"y"}]}');
  assert.equal(many.problems.length, 3);
  assert.match(many.message, /and 2 more problems/);

  for (const t of ['[]', '"x"', 'null', '{"default":"allow","rules":{}}', '{"default":"allow","rules":[1]}', '{"default":"allow","version":2}']) problem(t);
});

test('hostile input: size, depth and count limits; random text never throws', () => {
  assert.match(problem(' '.repeat(POLICY_MAX_BYTES + 1)).message, /larger than/);
  const deep = '{"default":"allow","comment":' + '['.repeat(5000) + ']'.repeat(5000) + '}';
  assert.match(problem(deep).message, /nested deeper/);
  const manyRules = JSON.stringify({ default: 'allow', rules: Array.from({ length: 10_001 }, () => ({ action: 'deny' })) });
  assert.match(problem(manyRules).message, /at most 10000 rules/);
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (s) => {
      const r = parsePolicy(s);
      return r.ok || r.error.code === 'invalid_argument';
    }),
  );
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 5 }), (v) => {
      const r = parsePolicy(JSON.stringify(v, null, 1));
      return r.ok || (r.error.code === 'invalid_argument' && /^policy:\d+:\d+: /.test(r.error.message));
    }),
  );
});

test('property: evaluate agrees with a naive first-match model', () => {
  const sel = fc.oneof(fc.constant('*'), fc.constantFrom('a', 'b', 'c'), fc.constantFrom(1, 2, 3), fc.constantFrom('tag:x', 'tag:y', 'role:r'));
  const rule = fc.record({ action: fc.constantFrom('allow', 'deny'), from: fc.array(sel, { minLength: 1, maxLength: 3 }), to: fc.array(sel, { minLength: 1, maxLength: 3 }), ports: fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 3 }) });
  const subj = fc.record({ node_id: fc.constantFrom(1, 2, 3), hostname: fc.constantFrom('a', 'b', 'c'), tags: fc.subarray(['x', 'y']), roles: fc.subarray(['r']) });
  fc.assert(
    fc.property(fc.constantFrom('allow', 'deny'), fc.array(rule, { maxLength: 6 }), subj, subj, fc.integer({ min: 0, max: 20 }), (dflt, rules, a, b, port) => {
      const p = parsePolicy(JSON.stringify({ default: dflt, rules }));
      if (!p.ok) return false;
      const m = (s: string | number, x: typeof a): boolean =>
        s === '*' || s === x.hostname || s === x.node_id || (typeof s === 'string' && ((s.startsWith('tag:') && x.tags.includes(s.slice(4))) || (s.startsWith('role:') && x.roles.includes(s.slice(5)))));
      const want = rules.findIndex((r) => r.ports.includes(port) && r.from.some((s) => m(s, a)) && r.to.some((s) => m(s, b)));
      const d = evaluate(p.value, a, b, port);
      return want === -1 ? d.rule_index === null && d.allow === (dflt === 'allow') : d.rule_index === want && d.allow === (rules[want]!.action === 'allow');
    }),
  );
});

test('subjectOf: node id, address or hostname, with tags and roles', () => {
  assert.deepEqual(subjectOf('12', ['gpu'], ['admin']), { ok: true, value: { node_id: 12, tags: ['gpu'], roles: ['admin'] } });
  assert.deepEqual(subjectOf('agent-b'), { ok: true, value: { hostname: 'agent-b', tags: [], roles: [] } });
  assert.equal(subjectOf('tag:x').ok, false);
  assert.equal(subjectOf('a', ['bad tag']).ok, false);
});
