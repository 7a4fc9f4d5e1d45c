// Install as npm users do (issue 17): `npm pack`'s tarball installed globally into a temporary prefix and as a
// dependency of a fresh project; the bins work from any directory (`pilotctl --json context`, the demo), `npx
// pilotctl` works in the project, the tarball ships what is needed and nothing else, and the native addon is built
// at install where cargo is present. Needs the npm registry for the dependencies (CI has it); skips with one line
// when the build output (dist/src) is absent (run `npm run build` first).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'native', 'build.mjs'))) return d;
    d = dirname(d);
  }
  throw new Error('repository root not found');
}
const ROOT = repoRoot();
const BUILT = existsSync(join(ROOT, 'dist', 'src', 'bin', 'pilotctl.js'));
const HAS_CARGO = spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status === 0;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

const explain = (r: Run): string => `exit ${r.code}\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-3000)}`;

test('install: npm pack → global prefix and a project dependency; bins, npx, demo and the native build work', { skip: BUILT ? false : 'dist/src not built (npm run build)', timeout: 900_000 }, async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'pilot-install-'));
  try {
    // The tarball (dist is already built: no prepack rebuild under the running tests).
    const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: ROOT });
    assert.equal(pack.code, 0, explain(pack));
    const info = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const tarball = join(tmp, info[0]!.filename);
    const files = info[0]!.files.map((f) => f.path);
    assert.ok(files.includes('dist/src/bin/pilotctl.js') && files.includes('native/src/lib.rs') && files.includes('README.md'));
    const stray = files.filter((f) => !/^(package\.json|README\.md|dist\/src\/|native\/(src\/|Cargo\.(toml|lock)$|build\.(rs|mjs)$|index\.(js|d\.ts)$))/.test(f));
    assert.deepEqual(stray, [], 'the tarball ships only what a user needs (no tests, bench, results, built .node)');

    const prefix = join(tmp, 'prefix');
    const project = join(tmp, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'uses-pilot', version: '1.0.0', private: true }));
    const npmArgs = ['--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts'];
    const [g, p] = await Promise.all([
      run('npm', ['install', '-g', '--prefix', prefix, ...npmArgs, tarball], { cwd: tmp, timeoutMs: 600_000 }),
      // The project install only proves `npx` resolution: its compiled parts are the global install's, so skip
      // building them twice (better-sqlite3 and the addon compile for a minute each on 2 cores).
      run('npm', ['install', ...npmArgs, '--ignore-scripts', tarball], { cwd: project, timeoutMs: 600_000 }),
    ]);
    assert.equal(g.code, 0, `global install: ${explain(g)}`);
    assert.equal(p.code, 0, `project install: ${explain(p)}`);

    // The bins on the prefix's PATH, run from an unrelated directory.
    const elsewhere = join(tmp, 'elsewhere');
    mkdirSync(elsewhere);
    const env = { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`, PILOT_HOME: join(tmp, 'home') };
    for (const bin of ['pilotctl', 'pilot-daemon', 'pilot-rendezvous']) assert.ok(existsSync(join(prefix, 'bin', bin)), `${bin} on the PATH`);
    const ctx = await run('pilotctl', ['--json', 'context'], { cwd: elsewhere, env });
    assert.equal(ctx.code, 0, explain(ctx));
    assert.equal(JSON.parse(ctx.stdout).status, 'ok');
    const help = await run('pilot-rendezvous', ['--help'], { cwd: elsewhere, env });
    assert.equal(help.code, 0, explain(help));

    const npx = await run('npx', ['--no-install', 'pilotctl', '--json', 'context'], { cwd: project, env: { ...process.env, PILOT_HOME: join(tmp, 'home2') } });
    assert.equal(npx.code, 0, explain(npx));
    assert.equal(JSON.parse(npx.stdout).status, 'ok');

    const installed = join(prefix, 'lib', 'node_modules', 'pilot-node');
    if (HAS_CARGO) assert.ok(existsSync(join(installed, 'native', 'pilot-datapath.node')), `the install built the native addon: ${g.stderr.slice(-1500)}`);

    const demo = await run('pilotctl', ['demo'], { cwd: elsewhere, env, timeoutMs: 180_000 });
    assert.equal(demo.code, 0, `demo from the installed package: ${explain(demo)}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
