// The compat port's certificate (issue 13): self-signed made once and kept (0600), reused across loads, the
// operator's files checked, and the fingerprint as Node computes it.
import test from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { compatCertDir, loadCompatCert, SELF_SIGNED_FILE } from '../../../src/registry/compat-cert.js';
import { parseFingerprint } from '../../../src/wire/compat-frames.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'pilot-cert-'));
}

test('self-signed: made at the first load (CN pilot-rendezvous, 10 years, 0600), the same at the next', () => {
  const dir = join(tmp(), 'sub'); // created on demand
  try {
    const a = loadCompatCert({ dir });
    assert.ok(a.ok, a.ok ? '' : a.error.message);
    assert.equal(a.value.origin, 'self-signed-new');
    assert.equal(a.value.path, join(dir, SELF_SIGNED_FILE));
    assert.equal(statSync(a.value.path).mode & 0o777, 0o600);
    const x = new X509Certificate(a.value.cert);
    assert.equal(x.subject, 'CN=pilot-rendezvous');
    const years = (Date.parse(x.validTo) - Date.parse(x.validFrom)) / (365.25 * 86400_000);
    assert.ok(years > 9.9 && years < 10.1, `valid ${years} years`);
    assert.equal((x.publicKey.asymmetricKeyDetails?.modulusLength), 2048);
    assert.equal(a.value.fingerprint, x.fingerprint256);
    const p = parseFingerprint(a.value.fingerprint);
    assert.ok(p.ok && p.value === a.value.fingerprint, 'in the AB:CD:… form parseFingerprint normalises to');

    const b = loadCompatCert({ dir });
    assert.ok(b.ok);
    assert.equal(b.value.origin, 'self-signed');
    assert.equal(b.value.fingerprint, a.value.fingerprint);
    assert.equal(b.value.key.includes('PRIVATE KEY'), true);
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});

test('the certificate directory: beside the store, else $HOME/.pilot-rendezvous', () => {
  assert.equal(compatCertDir('/var/lib/pilot/registry.json', '/home/x'), '/var/lib/pilot');
  assert.equal(compatCertDir(undefined, '/home/x'), '/home/x/.pilot-rendezvous');
});

test("operator's files: both or neither; key must match; unreadable or not PEM is invalid_argument", () => {
  const dir = tmp();
  try {
    const one = selfsigned.generate([{ name: 'commonName', value: 'rdv.example' }], { keySize: 2048, days: 30, algorithm: 'sha256' });
    const other = selfsigned.generate([{ name: 'commonName', value: 'other' }], { keySize: 2048, days: 30, algorithm: 'sha256' });
    writeFileSync(join(dir, 'cert.pem'), one.cert);
    writeFileSync(join(dir, 'key.pem'), one.private);
    writeFileSync(join(dir, 'other-key.pem'), other.private);
    writeFileSync(join(dir, 'junk.pem'), 'not a pem');

    const good = loadCompatCert({ dir, certPath: join(dir, 'cert.pem'), keyPath: join(dir, 'key.pem') });
    assert.ok(good.ok, good.ok ? '' : good.error.message);
    assert.equal(good.value.origin, 'files');
    assert.equal(good.value.fingerprint, new X509Certificate(one.cert).fingerprint256);

    const half = loadCompatCert({ dir, certPath: join(dir, 'cert.pem') });
    assert.ok(!half.ok && half.error.code === 'invalid_argument' && /together/.test(half.error.message));
    const mismatch = loadCompatCert({ dir, certPath: join(dir, 'cert.pem'), keyPath: join(dir, 'other-key.pem') });
    assert.ok(!mismatch.ok && /does not belong/.test(mismatch.error.message));
    const missing = loadCompatCert({ dir, certPath: join(dir, 'nope.pem'), keyPath: join(dir, 'key.pem') });
    assert.ok(!missing.ok && missing.error.code === 'invalid_argument');
    const junk = loadCompatCert({ dir, certPath: join(dir, 'junk.pem'), keyPath: join(dir, 'key.pem') });
    assert.ok(!junk.ok && junk.error.code === 'invalid_argument');
    assert.equal(readFileSync(join(dir, 'cert.pem'), 'utf8'), one.cert, 'never written');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a damaged self-signed file is an error with a hint, never silently replaced', () => {
  const dir = tmp();
  try {
    writeFileSync(join(dir, SELF_SIGNED_FILE), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', { mode: 0o600 });
    const r = loadCompatCert({ dir });
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'invalid_argument');
    assert.match(r.error.hint ?? '', /remove/);
    assert.match(readFileSync(join(dir, SELF_SIGNED_FILE), 'utf8'), /AAAA/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
