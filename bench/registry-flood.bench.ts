// Registry memory under hostile partial frames (issue 10; a benchmark, not a timed test). Starts
// pilot-rendezvous in a child process, opens N connections that each send a frame header announcing a
// near-1 MiB body and then all of it but the last byte, and reports the rendezvous RSS before, during (peak),
// after the partial-frame deadline and after the connections closed — plus how many connections the registry
// kept and how long a well-behaved request took meanwhile. Two waves: all from 127.0.0.1 (the per-IP cap
// answers) and one source address each from 127.0.0.0/8 (the global partial-frame budget answers).
// Before issue 10: 400 connections took the rendezvous from 54 MB to 468 MB, and it stayed there.
//
//   npm run build:ts && node dist/bench/registry-flood.bench.js [--connections=300] [--frame-bytes=1048575]
//        [--hold-ms=12000] [--settle-ms=3000] [--bin=PATH/pilot-rendezvous.js] [--baseline=PATH/pilot-rendezvous.js]
// --baseline runs the same waves against another build (e.g. one without the limits) for comparison.
// Prints JSON and writes bench/results/registry-flood.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { rssBytes } from './e2e/proc.js';
import { RegistryFrameDecoder, encodeRegistryFrame } from '../src/wire/registry-frame.js';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const a = argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
};
const HERE = dirname(fileURLToPath(import.meta.url)); // dist/bench
const ROOT = resolve(HERE, '..', '..');
const CONNECTIONS = Number(opt('connections', '300'));
// The near-1 MiB frames, and the largest our registry accepts (64 KiB - 1): the budget's case.
const FRAME_SIZES = opt('frame-bytes', `${(1 << 20) - 1},${64 * 1024 - 1}`).split(',').map(Number);
const HOLD_MS = Number(opt('hold-ms', '12000'));
const BIN = opt('bin', join(ROOT, 'dist', 'src', 'bin', 'pilot-rendezvous.js'));
const BASELINE = opt('baseline', '');
const SETTLE_MS = Number(opt('settle-ms', '3000'));
const MB = 1024 * 1024;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startRendezvous(bin: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [bin, '--registry-addr', '127.0.0.1:0', '--beacon-addr', '127.0.0.1:0', '--compat-addr', 'off', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((res, rej) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', res);
    child.once('exit', (code) => rej(new Error(`rendezvous exited with ${code}`)));
  });
  const port = Number((JSON.parse(line) as { registry: string }).registry.split(':').pop());
  return { child, port };
}

/** One well-behaved request on a fresh connection: ms to the answer, or null when refused/unanswered. */
async function probe(port: number, localAddress = '127.0.0.254'): Promise<number | null> {
  const t0 = performance.now();
  return new Promise((res) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    const d = new RegistryFrameDecoder();
    const done = (v: number | null) => {
      clearTimeout(timer);
      s.destroy();
      res(v);
    };
    const timer = setTimeout(() => done(null), 5000);
    s.on('connect', () => {
      const f = encodeRegistryFrame({ type: 'list_networks' });
      if (f.ok) s.write(f.value);
    });
    s.on('data', (c) => {
      const r = d.push(c);
      if (r.ok && r.value.length > 0) done(performance.now() - t0);
    });
    s.on('error', () => done(null));
    s.on('close', () => done(null));
  });
}

interface Wave {
  wave: string;
  connections: number;
  frame_bytes: number;
  rss_before_mb: number;
  rss_peak_mb: number;
  rss_during_mb: number;
  rss_after_deadline_mb: number;
  rss_after_close_mb: number;
  open_during: number;
  open_after_deadline: number;
  probe_ms_during: number | null;
}

async function wave(bin: string, name: string, FRAME_BYTES: number, addressFor: (i: number) => string): Promise<Wave> {
  const { child, port } = await startRendezvous(bin);
  const pid = child.pid!;
  try {
    await sleep(1000);
    await probe(port); // warm
    await sleep(500);
    const before = rssBytes(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 100);
    const socks: net.Socket[] = [];
    const open = new Set<net.Socket>();
    const body = Buffer.alloc(FRAME_BYTES - 1, 0x20);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(FRAME_BYTES, 0);
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: CONNECTIONS }, (_, i) =>
        new Promise<void>((res) => {
          const s = net.connect({ port, host: '127.0.0.1', localAddress: addressFor(i) });
          socks.push(s);
          s.on('error', () => undefined);
          s.on('close', () => {
            open.delete(s);
            res();
          });
          s.on('connect', () => {
            open.add(s);
            s.write(head);
            s.write(body, () => res());
          });
        }),
      ),
    );
    await sleep(2000);
    const during = rssBytes(pid);
    const openDuring = open.size;
    const probeMs = await probe(port);
    await sleep(Math.max(0, HOLD_MS - (Date.now() - t0)));
    const afterDeadline = rssBytes(pid);
    const openAfterDeadline = open.size;
    for (const s of socks) s.destroy();
    await sleep(SETTLE_MS);
    clearInterval(sampler);
    const afterClose = rssBytes(pid);
    return {
      wave: name,
      connections: CONNECTIONS,
      frame_bytes: FRAME_BYTES,
      rss_before_mb: +(before / MB).toFixed(1),
      rss_peak_mb: +(peak / MB).toFixed(1),
      rss_during_mb: +(during / MB).toFixed(1),
      rss_after_deadline_mb: +(afterDeadline / MB).toFixed(1),
      rss_after_close_mb: +(afterClose / MB).toFixed(1),
      open_during: openDuring,
      open_after_deadline: openAfterDeadline,
      probe_ms_during: probeMs === null ? null : +probeMs.toFixed(2),
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

async function runAll(bin: string): Promise<Wave[]> {
  const out: Wave[] = [];
  for (const size of FRAME_SIZES) {
    out.push(await wave(bin, 'one source IP (127.0.0.1)', size, () => '127.0.0.1'));
    // 127.0.1.x / 127.0.2.x: one address per connection (Linux routes all of 127/8 to lo).
    out.push(await wave(bin, `${CONNECTIONS} source IPs (127.0.1.1..)`, size, (i) => `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`));
  }
  return out;
}

async function main(): Promise<void> {
  const result: Record<string, unknown> = {
    bench: 'registry-flood',
    date: new Date().toISOString(),
    node: process.version,
    rendezvous: BIN,
    waves: await runAll(BIN),
  };
  if (BASELINE) {
    result.baseline = { rendezvous: BASELINE, waves: await runAll(BASELINE) };
  }
  const json = JSON.stringify(result, null, 2);
  process.stdout.write(json + '\n');
  const out = join(ROOT, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'registry-flood.json'), json + '\n');
}

main().catch((e) => {
  process.stderr.write(`registry-flood: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
