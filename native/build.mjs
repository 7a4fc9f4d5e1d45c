// Builds the native datapath (native/pilot-datapath.node) with @napi-rs/cli in release mode.
// Without cargo or libsodium: in CI (or PILOT_REQUIRE_NATIVE=1) fail loudly; elsewhere say once that the
// node:dgram datapath will be used and succeed, so `npm run build` works on machines without Rust.
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

if (process.platform !== 'linux') fail(`no native datapath for ${process.platform}`);
if (spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status !== 0) fail('cargo not found');
const hasSodium =
  spawnSync('pkg-config', ['--exists', 'libsodium'], { stdio: 'ignore' }).status === 0 ||
  ['/usr/lib/x86_64-linux-gnu/libsodium.so', '/usr/lib/libsodium.so', '/usr/local/lib/libsodium.so'].some(existsSync);
if (!hasSodium) fail('libsodium not found (apt-get install libsodium-dev pkg-config)');

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
console.error(`native: built pilot-datapath ${loaded.binding.version()} (${join('native', 'pilot-datapath.node')})`);
