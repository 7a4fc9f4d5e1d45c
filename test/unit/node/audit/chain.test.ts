// The audit chain (src/node/audit/chain.ts): an export verifies; flipping any byte, deleting a middle or the
// last record, reordering, re-signing with another key all fail and name the record and why.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { identityFromSeed, toBase64, type Identity } from '../../../../src/crypto/identity.js';
import {
  canonicalJson,
  encodeRecordLine,
  makeExportHeader,
  makeRecord,
  parseRecordLine,
  verifyAuditBytes,
  type AuditRecord,
} from '../../../../src/node/audit/chain.js';

const alice = identityFromSeed(new Uint8Array(32).fill(1));
const mallory = identityFromSeed(new Uint8Array(32).fill(2));
const bob = identityFromSeed(new Uint8Array(32).fill(3));

function chain(n: number, signer: Identity = alice, t0 = 1_764_650_000_000): AuditRecord[] {
  const out: AuditRecord[] = [makeRecord(null, 'audit.created', { public_key: toBase64(signer.publicKey), version: 'test' }, t0, signer)];
  for (let i = 1; i < n; i++) {
    const kind = i % 3 === 0 ? 'trust.approved' : i % 3 === 1 ? 'trust.request_received' : 'policy.denied';
    out.push(makeRecord(out[i - 1]!, kind, { node_id: i, by: 'local', justification: `ünïcode ${i} "q"`, port: 1000 + i }, t0 + i * 1000, signer));
  }
  return out;
}

function exportText(rs: AuditRecord[], signer: Identity = alice, count = rs.length, head = rs[rs.length - 1]!.hash): string {
  const h = makeExportHeader({ node_id: 7, public_key: toBase64(signer.publicKey), exported_at_ms: 1_764_660_000_000, count, head }, signer);
  return canonicalJson(h) + '\n' + rs.map((r) => encodeRecordLine(r) + '\n').join('');
}

const bytes = (s: string): Uint8Array => Buffer.from(s, 'utf8');
const lines = (s: string): string[] => s.split('\n').slice(0, -1);
const join = (ls: string[]): string => ls.map((l) => l + '\n').join('');

test('a fresh export verifies, with the key from its header or from --public-key', () => {
  const text = exportText(chain(10));
  const r = verifyAuditBytes(bytes(text));
  assert.equal(r.ok, true, JSON.stringify(r.failure));
  assert.equal(r.records, 10);
  assert.equal(r.source, 'export');
  assert.equal(r.public_key_source, 'header');
  assert.equal(r.public_key, toBase64(alice.publicKey));
  assert.equal(r.node_id, 7);
  assert.equal(r.kinds['audit.created'], 1);
  const f = verifyAuditBytes(bytes(text), { publicKey: alice.publicKey });
  assert.equal(f.ok, true);
  assert.equal(f.public_key_source, 'flag');
});

test('a raw log (no header) verifies against the key record 0 names', () => {
  const r = verifyAuditBytes(bytes(join(chain(5).map(encodeRecordLine))));
  assert.equal(r.ok, true, JSON.stringify(r.failure));
  assert.equal(r.source, 'log');
});

test('the wrong expected key fails (wrong_key)', () => {
  const r = verifyAuditBytes(bytes(exportText(chain(4))), { publicKey: mallory.publicKey });
  assert.equal(r.ok, false);
  assert.equal(r.failure?.reason, 'wrong_key');
});

test('an edited record is named: seq, line, reason edited', () => {
  const ls = lines(exportText(chain(6)));
  ls[3] = ls[3]!.replace('"node_id":2', '"node_id":9');
  const r = verifyAuditBytes(bytes(join(ls)));
  assert.equal(r.failure?.reason, 'edited');
  assert.equal(r.failure?.seq, 2);
  assert.equal(r.failure?.line, 4);
  assert.match(r.failure!.message, /seq 2 \(line 4\) was edited/);
});

test('an edited record with its hash recomputed but not re-signed: bad_signature', () => {
  const rs = chain(6);
  const forged = makeRecord(rs[1]!, rs[2]!.kind, { ...rs[2]!.data, node_id: 99 }, rs[2]!.at_ms, mallory);
  // The rest no longer link; the forged record itself is the first bad one.
  const r = verifyAuditBytes(bytes(exportText([...rs.slice(0, 2), forged, ...rs.slice(3)])));
  assert.equal(r.failure?.reason, 'bad_signature');
  assert.equal(r.failure?.seq, 2);
});

test('a whole chain re-signed by another key fails against the real key', () => {
  const fake = chain(5, mallory);
  const r = verifyAuditBytes(bytes(exportText(fake, mallory)), { publicKey: alice.publicKey });
  assert.equal(r.ok, false);
  assert.equal(r.failure?.reason, 'wrong_key');
});

test('deleting a middle record: missing, naming the seq', () => {
  const ls = lines(exportText(chain(8)));
  ls.splice(4, 1); // record seq 3
  const r = verifyAuditBytes(bytes(join(ls)));
  assert.equal(r.failure?.reason, 'missing');
  assert.equal(r.failure?.seq, 3);
  assert.match(r.failure!.message, /record seq 3 is missing/);
});

test('deleting the last records is caught by the signed head: truncated', () => {
  const ls = lines(exportText(chain(8)));
  const r1 = verifyAuditBytes(bytes(join(ls.slice(0, -1))));
  assert.equal(r1.failure?.reason, 'truncated');
  assert.equal(r1.failure?.seq, 7);
  assert.match(r1.failure!.message, /last record \(seq 7\) was deleted/);
  const r3 = verifyAuditBytes(bytes(join(ls.slice(0, -3))));
  assert.equal(r3.failure?.reason, 'truncated');
  assert.match(r3.failure!.message, /seq 5\.\.7/);
});

test('a header re-made with a smaller count is not signed: header', () => {
  const rs = chain(8);
  const ls = lines(exportText(rs));
  const h = JSON.parse(ls[0]!);
  h.count = 5;
  h.head = rs[4]!.hash;
  const text = join([canonicalJson(h), ...ls.slice(1, 6)]);
  const r = verifyAuditBytes(bytes(text));
  assert.equal(r.failure?.reason, 'header');
});

test('swapping two records: reordered', () => {
  const ls = lines(exportText(chain(8)));
  [ls[3], ls[5]] = [ls[5]!, ls[3]!];
  const r = verifyAuditBytes(bytes(join(ls)));
  assert.equal(r.failure?.reason, 'reordered');
  assert.equal(r.failure?.seq, 4);
});

test('a duplicated record: reordered', () => {
  const ls = lines(exportText(chain(5)));
  ls.splice(3, 0, ls[2]!);
  const r = verifyAuditBytes(bytes(join(ls)));
  assert.equal(r.failure?.reason, 'reordered');
});

test('deleting record 0 (audit.created): missing seq 0', () => {
  const ls = lines(exportText(chain(4)));
  ls.splice(1, 1);
  const r = verifyAuditBytes(bytes(join(ls)));
  assert.equal(r.failure?.reason, 'missing');
  assert.equal(r.failure?.seq, 0);
});

test('base64 signatures must be canonical (unused bits cannot carry an edit)', () => {
  const rs = chain(2);
  const line = encodeRecordLine(rs[1]!);
  const sig = rs[1]!.sig; // 88 chars, '==' padded: the last data char holds 4 unused bits
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const c = sig[85]!;
  const i = alphabet.indexOf(c);
  const twin = alphabet[(i & ~0xf) | ((i + 1) & 0xf)]!;
  const edited = line.replace(sig, sig.slice(0, 85) + twin + sig.slice(86));
  assert.notEqual(edited, line);
  assert.equal(parseRecordLine(edited).ok, false);
});

test('a raw log with a torn last line fails as torn; acknowledged by audit.torn_write it verifies and is listed', async () => {
  const { createHash } = await import('node:crypto');
  const rs = chain(4);
  const partial = encodeRecordLine(makeRecord(rs[3]!, 'trust.approved', { node_id: 5 }, 0, alice)).slice(0, 40);
  const raw = join(rs.map(encodeRecordLine)) + partial;
  const t = verifyAuditBytes(bytes(raw));
  assert.equal(t.failure?.reason, 'torn');
  assert.equal(t.failure?.line, 5);
  const ack = makeRecord(rs[3]!, 'audit.torn_write', { line: 5, bytes: partial.length, sha256: createHash('sha256').update(partial).digest('hex') }, 1, alice);
  const fixed = raw + '\n' + encodeRecordLine(ack) + '\n';
  const v = verifyAuditBytes(bytes(fixed));
  assert.equal(v.ok, true, JSON.stringify(v.failure));
  assert.deepEqual(v.torn_writes.map((x) => x.bytes), [partial.length]);
  // A garbage line the ack does not describe is an edit.
  const wrong = raw.slice(0, -1) + 'X\n' + encodeRecordLine(ack) + '\n';
  assert.equal(verifyAuditBytes(bytes(wrong)).failure?.reason, 'edited');
});

test('a local key rotation moves signing to the new key; the export ends with it', () => {
  const rs = chain(3, alice);
  const rot = makeRecord(rs[2]!, 'key.rotated', { node_id: 7, old_public_key: toBase64(alice.publicKey), new_public_key: toBase64(bob.publicKey), by: 'local' }, 5, alice);
  const after = makeRecord(rot, 'trust.approved', { node_id: 3, by: 'local' }, 6, bob);
  const text = exportText([...rs, rot, after], bob);
  const r = verifyAuditBytes(bytes(text), { publicKey: bob.publicKey });
  assert.equal(r.ok, true, JSON.stringify(r.failure));
  assert.equal(r.public_key, toBase64(bob.publicKey));
  assert.deepEqual(r.unattested_key_changes, []);
  // The old key is accepted as the expected key too (it starts the chain).
  assert.equal(verifyAuditBytes(bytes(text), { publicKey: alice.publicKey }).ok, true);
  // Records after the rotation signed by the old key fail.
  const stale = makeRecord(rot, 'trust.approved', { node_id: 3, by: 'local' }, 6, alice);
  assert.equal(verifyAuditBytes(bytes(exportText([...rs, rot, stale], bob))).failure?.reason, 'bad_signature');
  // A peer's rotation does not change our key.
  const peer = makeRecord(rs[2]!, 'key.rotated', { node_id: 9, old_public_key: 'x', new_public_key: toBase64(bob.publicKey), by: 'peer' }, 5, alice);
  const after2 = makeRecord(peer, 'trust.approved', { node_id: 3 }, 6, alice);
  assert.equal(verifyAuditBytes(bytes(exportText([...rs, peer, after2], alice))).ok, true);
});

test('audit.key_changed signed by the new key is accepted and listed as unattested', () => {
  const rs = chain(3, alice);
  const kc = makeRecord(rs[2]!, 'audit.key_changed', { old_public_key: toBase64(alice.publicKey), new_public_key: toBase64(bob.publicKey) }, 5, bob);
  const r = verifyAuditBytes(bytes(exportText([...rs, kc], bob)), { publicKey: bob.publicKey });
  assert.equal(r.ok, true, JSON.stringify(r.failure));
  assert.deepEqual(r.unattested_key_changes, [{ seq: 3, new_public_key: toBase64(bob.publicKey) }]);
  // It must start from the key in force.
  const bad = makeRecord(rs[2]!, 'audit.key_changed', { old_public_key: toBase64(mallory.publicKey), new_public_key: toBase64(bob.publicKey) }, 5, bob);
  assert.equal(verifyAuditBytes(bytes(exportText([...rs, bad], bob))).ok, false);
});

test('property: flipping any bit of any byte of an export fails verification', () => {
  const text = exportText(chain(6));
  const b = bytes(text);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: b.length - 1 }), fc.integer({ min: 0, max: 7 }), (pos, bit) => {
      const x = Uint8Array.from(b);
      x[pos] = x[pos]! ^ (1 << bit);
      const r = verifyAuditBytes(x);
      return r.ok === false && r.failure !== null && r.failure.line >= 0;
    }),
    { numRuns: 2000 },
  );
});

test('property: every single byte of an export, replaced by any other value, is detected (exhaustive over positions)', () => {
  const text = exportText(chain(3));
  const b = bytes(text);
  for (let pos = 0; pos < b.length; pos++) {
    const x = Uint8Array.from(b);
    x[pos] = (x[pos]! + 1 + ((pos * 37) % 255)) & 0xff;
    if (x[pos] === b[pos]) continue;
    const r = verifyAuditBytes(x);
    assert.equal(r.ok, false, `byte ${pos} (${JSON.stringify(text[pos])}) changed without detection`);
  }
});

test('property: deleting any record line, or swapping any two, fails and names a record', () => {
  const ls = lines(exportText(chain(7)));
  fc.assert(
    fc.property(fc.integer({ min: 1, max: ls.length - 1 }), (i) => {
      const x = [...ls];
      x.splice(i, 1);
      const r = verifyAuditBytes(bytes(join(x)));
      return !r.ok && ['missing', 'truncated'].includes(r.failure!.reason) && r.failure!.seq === i - 1;
    }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 1, max: ls.length - 1 }), fc.integer({ min: 1, max: ls.length - 1 }), (i, j) => {
      fc.pre(i !== j);
      const x = [...ls];
      [x[i], x[j]] = [x[j]!, x[i]!];
      const r = verifyAuditBytes(bytes(join(x)));
      return !r.ok && r.failure!.reason === 'reordered';
    }),
  );
});

test('property: random bytes never throw and never verify', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
      const r = verifyAuditBytes(b);
      return r.ok === false;
    }),
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (s) => {
      return parseRecordLine(s).ok === false && verifyAuditBytes(bytes(s + '\n')).ok === false;
    }),
  );
});

test('canonicalJson sorts keys, drops undefined and is stable under a parse round trip', () => {
  assert.equal(canonicalJson({ b: 1, a: [1, undefined, { d: undefined, c: 'x' }] }), '{"a":[1,null,{"c":"x"}],"b":1}');
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const c = canonicalJson(v);
      return canonicalJson(JSON.parse(c)) === c;
    }),
  );
});
