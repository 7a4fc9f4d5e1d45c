// Builds the native datapath (native/pilot-datapath.node) with @napi-rs/cli in release mode.
// The addon's AEAD is libsodium when libsodium-dev is installed, else OpenSSL's EVP AEADs taken from the node
// process itself (node exports them), so cargo alone is enough; the build says once which one it used.
// Without cargo: in CI (or PILOT_REQUIRE_NATIVE=1) fail loudly; elsewhere say once that the node:dgram
// datapath will be used, with the command that fixes it, and succeed, so `npm run build` works without Rust.
// In CI (or PILOT_NATIVE_BOTH=1), with libsodium present, the OpenSSL variant is built as well
// (native/pilot-datapath-evp.node) so the tests can check both backends against each other.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const required = Boolean(process.env.CI) || process.env.PILOT_REQUIRE_NATIVE === '1';

function fail(why) {
  if (required) {
    console.error(`native: ${why} — the native datapath is required here (CI or PILOT_REQUIRE_NATIVE=1)`);
    process.exit(1);
  }
  console.error(`native: ${why}; the JS (node:dgram) datapath will be used`);
  process.exit(0);
}

function run(cmd, args) {
  return spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env: process.env });
}

// `npm install pilot-node` runs this as postinstall; in a checkout `npm run build` builds it (after npm ci).
const isPostinstall = process.argv.includes('--postinstall');
if (isPostinstall && existsSync(join(root, '.git'))) process.exit(0);
if (process.platform !== 'linux') fail(`no native datapath for ${process.platform}`);
if (spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status !== 0) {
  fail('cargo not found (install Rust: `apt-get install cargo` or https://rustup.rs, then `npm run build:native`)');
}
const hasSodium =
  spawnSync('pkg-config', ['--exists', 'libsodium'], { stdio: 'ignore' }).status === 0 ||
  ['/usr/lib/x86_64-linux-gnu/libsodium.so', '/usr/lib/libsodium.so', '/usr/local/lib/libsodium.so'].some(existsSync);
const forcedEvp = process.env.PILOT_NATIVE_AEAD === 'evp';
if (!hasSodium && !forcedEvp) {
  console.error('native: libsodium not found; the addon uses OpenSSL EVP AEADs from the node process (apt-get install libsodium-dev pkg-config for libsodium)');
}

const napiBin = join(root, 'node_modules', '.bin', 'napi');
const r = existsSync(napiBin)
  ? run(napiBin, ['build', '--release', '--manifest-path', 'native/Cargo.toml', '--output-dir', 'native', '--package-json-path', 'package.json'])
  : run('cargo', ['build', '--release', '--manifest-path', 'native/Cargo.toml']);
if (r.status !== 0) fail(`cargo build failed (exit ${r.status ?? r.signal})`);
if (!existsSync(napiBin)) {
  const { copyFileSync } = await import('node:fs');
  copyFileSync(join(here, 'target', 'release', 'libpilot_datapath.so'), join(here, 'pilot-datapath.node'));
}
const { loadNativeBinding } = await import('./index.js');
const loaded = loadNativeBinding();
if (!loaded.ok) fail(loaded.reason);
const backend = typeof loaded.binding.aeadBackend === 'function' ? loaded.binding.aeadBackend() : 'unknown';
console.error(`native: built pilot-datapath ${loaded.binding.version()} with ${backend} AEAD (${join('native', 'pilot-datapath.node')})`);

if (hasSodium && !forcedEvp && !isPostinstall && (process.env.CI || process.env.PILOT_NATIVE_BOTH === '1')) {
  const env = { ...process.env, PILOT_NATIVE_AEAD: 'evp', CARGO_TARGET_DIR: join(here, 'target', 'evp') };
  const e = spawnSync('cargo', ['build', '--release', '--manifest-path', 'native/Cargo.toml'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env });
  if (e.status !== 0) fail(`cargo build of the OpenSSL variant failed (exit ${e.status ?? e.signal})`);
  const { copyFileSync } = await import('node:fs');
  copyFileSync(join(here, 'target', 'evp', 'release', 'libpilot_datapath.so'), join(here, 'pilot-datapath-evp.node'));
  console.error(`native: built the OpenSSL EVP variant too (${join('native', 'pilot-datapath-evp.node')})`);
}
