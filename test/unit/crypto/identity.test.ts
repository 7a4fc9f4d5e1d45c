import test from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  fromBase64,
  generateIdentity,
  identityFromSeed,
  parseIdentityJson,
  sign,
  toBase64,
  verify,
} from '../../../src/crypto/identity.js';
import { loadIdentity, loadOrCreateIdentity, saveIdentity } from '../../../src/node/identity-store.js';
import { findInteropDir, readIdentities, readTranscript } from '../../interop/captures.js';

/**
 * The v0.5 captures (../shared/interop, or PILOT_INTEROP_CAPTURES), found as the golden tests find them. These
 * tests need them: where the golden tests skip, a missing capture here is a failure, never a silent fallback.
 */
function interopDir(): string {
  const dir = findInteropDir();
  assert.ok(dir !== null, 'no v0.5 captures: put them in ../shared/interop or set PILOT_INTEROP_CAPTURES');
  for (const f of ['identity-node1-ref-b.json', 'identity-node2-ref-a.json', 'registry-transcript.txt']) {
    assert.ok(existsSync(join(dir, f)), `${join(dir, f)} is missing from the captures`);
  }
  return dir;
}

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'pilot-identity-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('sign/verify round trip; verify rejects tampering and wrong sizes without throwing', () => {
  const id = generateIdentity();
  const msg = new TextEncoder().encode('heartbeat:42');
  const sig = sign(id, msg);
  assert.equal(sig.length, 64);
  assert.equal(verify(id.publicKey, msg, sig), true);
  const bad = sig.slice();
  bad[0]! ^= 1;
  assert.equal(verify(id.publicKey, msg, bad), false);
  assert.equal(verify(id.publicKey, new TextEncoder().encode('heartbeat:43'), sig), false);
  assert.equal(verify(id.publicKey.subarray(0, 31), msg, sig), false);
  assert.equal(verify(id.publicKey, msg, sig.subarray(0, 63)), false);
  assert.equal(verify(new Uint8Array(32), msg, sig), false);
});

test('identityFromSeed is deterministic and matches the libsodium secret-key layout', () => {
  const seed = new Uint8Array(32).fill(7);
  const a = identityFromSeed(seed);
  const b = identityFromSeed(seed);
  assert.deepEqual(a.publicKey, b.publicKey);
  assert.deepEqual(a.secretKey.subarray(0, 32), seed);
  assert.deepEqual(a.secretKey.subarray(32), a.publicKey);
});

test('base64 helpers are strict', () => {
  const bytes = Uint8Array.of(0, 1, 2, 250, 251, 252);
  assert.deepEqual(fromBase64(toBase64(bytes)), bytes);
  assert.equal(fromBase64('AAE!'), null);
  assert.equal(fromBase64('AAE'), null);
  assert.equal(fromBase64(' AAEC'), null);
  assert.deepEqual(fromBase64(''), new Uint8Array(0));
});

test('interop: both captured identity files parse and node 1 verifies its captured heartbeat signature', () => {
  const dir = interopDir();
  for (const name of ['identity-node1-ref-b.json', 'identity-node2-ref-a.json']) {
    const r = parseIdentityJson(readFileSync(join(dir, name), 'utf8'));
    assert.ok(r.ok, name);
  }
  const node1 = readIdentities(dir).get(1)!;
  const line = readTranscript(dir).find((l) => l.json.includes('"type":"heartbeat"') && l.json.includes('"node_id":1,'));
  assert.ok(line, 'heartbeat of node 1 in the transcript');
  const doc = JSON.parse(line.json) as { signature: string; node_id: number };
  const sig = fromBase64(doc.signature);
  assert.ok(sig);
  const challenge = new TextEncoder().encode(`heartbeat:${doc.node_id}`);
  assert.equal(verify(node1.publicKey, challenge, sig), true);
  // Our signer produces the same deterministic Ed25519 signature as the original.
  assert.equal(toBase64(sign(node1, challenge)), doc.signature);
  assert.equal(verify(node1.publicKey, new TextEncoder().encode('heartbeat:2'), sig), false);
});

test('interop: an original identity file loads through the store once it is 0600', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'identity.json');
  copyFileSync(join(interopDir(), 'identity-node2-ref-a.json'), path);
  chmodSync(path, 0o600);
  const r = loadOrCreateIdentity(path);
  assert.ok(r.ok);
  assert.equal(r.value.created, false);
  assert.equal(toBase64(r.value.identity.publicKey), 'uSI85TvNAF2msq4FFottd3az/2CwSKZr8rOd9UFhcvc=');
});

test('loadOrCreateIdentity creates once (0600, original JSON fields, no temp files left), then loads the same key', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'sub', 'identity.json');
  const first = loadOrCreateIdentity(path);
  assert.ok(first.ok);
  assert.equal(first.value.created, true);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const doc = JSON.parse(readFileSync(path, 'utf8')) as Record<string, string>;
  assert.deepEqual(Object.keys(doc).sort(), ['private_key', 'public_key']);
  assert.equal(fromBase64(doc.private_key!)?.length, 64);
  assert.deepEqual(readdirSync(dirname(path)), ['identity.json']);

  const second = loadOrCreateIdentity(path);
  assert.ok(second.ok);
  assert.equal(second.value.created, false);
  assert.deepEqual(second.value.identity.publicKey, first.value.identity.publicKey);
  assert.deepEqual(second.value.identity.secretKey, first.value.identity.secretKey);
});

test('a corrupt identity file is an error naming the file and is never replaced', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'identity.json');
  const cases = [
    'not json',
    '[]',
    '{"private_key": 1, "public_key": "x"}',
    '{"private_key": "AAAA", "public_key": "AAAA"}',
    // keys of two different identities
    JSON.stringify({ private_key: toBase64(generateIdentity().secretKey), public_key: toBase64(generateIdentity().publicKey) }),
  ];
  for (const text of cases) {
    writeFileSync(path, text, { mode: 0o600 });
    const r = loadOrCreateIdentity(path);
    assert.equal(r.ok, false, text);
    if (r.ok) continue;
    assert.equal(r.error.code, 'invalid_argument');
    assert.ok(r.error.hint?.includes(path), 'hint names the file');
    assert.equal(readFileSync(path, 'utf8'), text, 'file untouched');
  }
});

test('an identity file readable by others is refused with a chmod hint', { skip: process.platform === 'win32' }, (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'identity.json');
  assert.ok(saveIdentity(path, generateIdentity()).ok);
  chmodSync(path, 0o644);
  const r = loadOrCreateIdentity(path);
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.error.code, 'invalid_argument');
    assert.match(r.error.hint ?? '', /chmod 600/);
    assert.ok(r.error.hint?.includes(path));
  }
  assert.equal(statSync(path).mode & 0o777, 0o644, 'mode left as found');
});

test('loadIdentity: not_found without creating; a directory is invalid_argument', (t) => {
  const dir = tempDir(t);
  const missing = loadIdentity(join(dir, 'nope.json'));
  assert.equal(missing.ok, false);
  if (!missing.ok) assert.equal(missing.error.code, 'not_found');
  assert.deepEqual(readdirSync(dir), []);
  const asDir = loadOrCreateIdentity(dir);
  assert.equal(asDir.ok, false);
  if (!asDir.ok) assert.equal(asDir.error.code, 'invalid_argument');
});

test('an unreadable identity file is an error, not a new identity', { skip: process.platform === 'win32' || process.getuid?.() === 0 }, (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'identity.json');
  assert.ok(saveIdentity(path, generateIdentity()).ok);
  chmodSync(path, 0o000);
  const r = loadOrCreateIdentity(path);
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.error.code, 'internal');
});
