// Issue 10: every file we write goes through core/safe-file (random temp name, O_CREAT|O_EXCL|O_NOFOLLOW, fsync,
// rename). The old writeJsonFile opened `<path>.tmp-<pid>` with plain 'w': a symlink planted at that guessable
// name made it write trust data into the symlink's target.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openAppendNoFollow, tempPathFor, writeFileSafe } from '../../../src/core/safe-file.js';
import { saveIdentity, loadOrCreateIdentity } from '../../../src/node/identity-store.js';
import { generateIdentity } from '../../../src/crypto/identity.js';
import { readJsonFile, writeJsonFile } from '../../../src/node/json-file.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pilot-jsonfile-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function victim(name: string): string {
  const v = join(dir, name);
  writeFileSync(v, 'VICTIM\n');
  return v;
}

test('attack: a symlink planted at the old predictable temp name is not written through', () => {
  const path = join(dir, 'trust.json');
  const target = victim('victim-tmp');
  // The names the old code used (<path>.tmp-<pid>), for this process and its neighbours.
  for (let pid = process.pid - 2; pid <= process.pid + 2; pid++) symlinkSync(target, `${path}.tmp-${pid}`);
  const w = writeJsonFile(path, { trusted: [7] });
  assert.ok(w.ok, w.ok ? '' : w.error.message);
  assert.equal(readFileSync(target, 'utf8'), 'VICTIM\n', 'the symlink target is untouched');
  assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { trusted: [7] });
  assert.equal(lstatSync(path).isFile(), true);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const r = readJsonFile(path, {}, (v): v is object => typeof v === 'object', 0);
  assert.ok(r.ok);
});

test('attack: a symlink planted at the target itself is replaced, not followed', () => {
  const path = join(dir, 'config.json');
  const target = victim('victim-final');
  symlinkSync(target, path);
  assert.ok(writeFileSafe(path, '{}\n').ok);
  assert.equal(readFileSync(target, 'utf8'), 'VICTIM\n');
  assert.equal(lstatSync(path).isSymbolicLink(), false);
  assert.equal(readFileSync(path, 'utf8'), '{}\n');
});

test('temp names are random and the exclusive create refuses an existing file or symlink there', () => {
  const path = join(dir, 'x.json');
  const names = new Set(Array.from({ length: 50 }, () => tempPathFor(path)));
  assert.equal(names.size, 50);
  for (const n of names) assert.match(n, /\/\.x\.json\.tmp-[0-9a-f]{16}$/);
  // No temp file is left behind after writes.
  assert.ok(writeFileSafe(path, 'a').ok);
  assert.ok(writeFileSafe(path, 'b').ok);
  assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.x.json.tmp-')), []);
  assert.equal(readFileSync(path, 'utf8'), 'b');
});

test('noReplace never overwrites: already_exists, the existing file untouched', () => {
  const path = join(dir, 'once.json');
  assert.ok(writeFileSafe(path, 'first', { noReplace: true }).ok);
  const again = writeFileSafe(path, 'second', { noReplace: true });
  assert.ok(!again.ok);
  assert.equal(again.error.code, 'already_exists');
  assert.equal(readFileSync(path, 'utf8'), 'first');
});

test('identity files: created and saved through the safe writer, a planted symlink never followed', () => {
  const path = join(dir, 'identity.json');
  const target = victim('victim-identity');
  symlinkSync(target, path);
  // An existing (even dangling or foreign) entry is never replaced by loadOrCreate: it is reported.
  const r = loadOrCreateIdentity(path);
  assert.ok(!r.ok);
  assert.equal(readFileSync(target, 'utf8'), 'VICTIM\n');
  rmSync(path);
  const c = loadOrCreateIdentity(path);
  assert.ok(c.ok && c.value.created);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.ok(saveIdentity(path, generateIdentity()).ok);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.identity.json.tmp-')), []);
});

test('attack: a symlink planted at the log path is refused, not appended through', () => {
  const path = join(dir, 'daemon.log');
  const target = victim('victim-log');
  symlinkSync(target, path);
  const r = openAppendNoFollow(path);
  assert.ok(!r.ok);
  assert.match(r.error.hint ?? '', /symlink/);
  assert.equal(readFileSync(target, 'utf8'), 'VICTIM\n');
  assert.ok(existsSync(path));
});
