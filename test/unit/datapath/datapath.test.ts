// One suite, run against both datapaths (node:dgram and the native addon). The native run is skipped,
// with the reason, only when the addon is not built.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Rng, seedFromEnv, silentLogger, type Result } from '../../../src/core/index.js';
import {
  PacketBatch,
  ipv4ToU32,
  u32ToIpv4,
  openDatapath,
  openDgramDatapath,
  openNativeDatapath,
  loadNative,
  type Datapath,
  type RecvBatch,
} from '../../../src/datapath/index.js';

const seed = seedFromEnv();
test.after(() => console.log(`# datapath seed PILOT_SEED=${seed}`));
const logger = silentLogger();
const LO = '127.0.0.1';
const native = await loadNative();
const nativeSkip: string | false =
  process.env.PILOT_NATIVE === '0'
    ? 'PILOT_NATIVE=0 forces the JS datapath'
    : native.ok
      ? false
      : `${native.error.message}; skipping the native run`;

type Open = (port?: number) => Promise<Result<Datapath>>;
const IMPLS: Array<{ name: string; open: Open; skip: string | false }> = [
  { name: 'dgram', open: (port = 0) => openDgramDatapath({ host: LO, port, logger }), skip: false },
  { name: 'native', open: (port = 0) => openNativeDatapath({ host: LO, port, logger }), skip: nativeSkip },
];

async function must(open: Open, port?: number): Promise<Datapath> {
  const r = await open(port);
  assert.ok(r.ok, r.ok ? '' : `${r.error.code}: ${r.error.message}`);
  return r.value;
}

interface Got {
  data: Buffer;
  ip: string;
  ipU32: number;
  port: number;
}

/** Collect `n` packets (copies: batches are only valid during the handler). */
function collect(dp: Datapath, n: number, timeoutMs = 5000): Promise<Got[]> {
  const got: Got[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout: got ${got.length} of ${n} packets`)), timeoutMs);
    dp.onReceive((b: RecvBatch) => {
      assert.ok(b.count > 0, 'empty batch delivered');
      for (let i = 0; i < b.count; i++) {
        got.push({ data: Buffer.from(b.payload(i)), ip: b.ip(i), ipU32: b.ipU32(i), port: b.port(i) });
      }
      if (got.length >= n) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

function randomPackets(rng: Rng, count: number, size: () => number): Buffer[] {
  return Array.from({ length: count }, () => {
    const b = Buffer.alloc(size());
    rng.fill(b);
    return b;
  });
}

const sorted = (xs: Buffer[]): string[] => xs.map((x) => x.toString('base64')).sort();

for (const impl of IMPLS) {
  test(`datapath(${impl.name})`, { skip: impl.skip }, async (t) => {
    const rng = new Rng(seed);

    await t.test('binds port 0 to an ephemeral port and reports it', async () => {
      const a = await must(impl.open);
      assert.equal(a.kind, impl.name);
      assert.equal(a.localAddress.ip, LO);
      assert.ok(a.localAddress.port > 0 && a.localAddress.port < 65536);
      await a.close();
    });

    await t.test('single send: contents and sender endpoint', async () => {
      const [a, b] = [await must(impl.open), await must(impl.open)];
      const p = collect(b, 1);
      const msg = Buffer.from('hello pilot');
      assert.equal(a.send(msg, LO, b.localAddress.port), 1);
      const [g] = await p;
      assert.deepEqual(g!.data, msg);
      assert.equal(g!.ip, LO);
      assert.equal(g!.ipU32, 0x7f000001);
      assert.equal(g!.port, a.localAddress.port);
      await Promise.all([a.close(), b.close()]);
    });

    for (const count of [1, 7, 64, 333, 1000]) {
      await t.test(`sendBatch ${count} packets, random sizes 1..1452, contents verified`, async () => {
        const [a, b] = [await must(impl.open), await must(impl.open)];
        const pkts = randomPackets(rng, count, () => 1 + rng.int(1452));
        const batch = new PacketBatch(count, 1452 * count);
        for (const p of pkts) assert.ok(batch.push(p, ipv4ToU32(LO), b.localAddress.port));
        const p = collect(b, count);
        assert.equal(a.sendBatch(batch), count);
        const got = await p;
        assert.deepEqual(sorted(got.map((g) => g.data)), sorted(pkts));
        for (const g of got) assert.equal(g.port, a.localAddress.port);
        await Promise.all([a.close(), b.close()]);
      });
    }

    await t.test('equal-size runs with a shorter tail (the GSO shape), in order', async () => {
      const [a, b] = [await must(impl.open), await must(impl.open)];
      const sizes = [...Array(150).fill(1200), 500, ...Array(70).fill(64), 1, 1452, 1452];
      const pkts = sizes.map((n, i) => {
        const x = Buffer.alloc(n, i & 255);
        if (n >= 2) x.writeUInt16BE(i, 0);
        return x;
      });
      const batch = new PacketBatch(pkts.length, 1452 * pkts.length);
      for (const p of pkts) batch.push(p, ipv4ToU32(LO), b.localAddress.port);
      const p = collect(b, pkts.length);
      assert.equal(a.sendBatch(batch), pkts.length);
      const got = await p;
      // Loopback keeps order for one flow; GSO/GRO must too.
      assert.deepEqual(got.map((g) => g.data.toString('hex')), pkts.map((x) => x.toString('hex')));
      if (impl.name === 'native') assert.ok(a.stats().txGsoSends > 0, 'expected GSO sends on loopback');
      await Promise.all([a.close(), b.close()]);
    });

    await t.test('one batch to two receivers, interleaved', async () => {
      const [a, b, c] = [await must(impl.open), await must(impl.open), await must(impl.open)];
      const batch = new PacketBatch(200, 200 * 1000);
      const toB: Buffer[] = [];
      const toC: Buffer[] = [];
      for (let i = 0; i < 200; i++) {
        const x = randomPackets(rng, 1, () => 1000)[0]!;
        const dst = i % 3 === 0 ? c : b;
        (dst === b ? toB : toC).push(x);
        batch.push(x, ipv4ToU32(LO), dst.localAddress.port);
      }
      const [pb, pc] = [collect(b, toB.length), collect(c, toC.length)];
      assert.equal(a.sendBatch(batch), 200);
      assert.deepEqual(sorted((await pb).map((g) => g.data)), sorted(toB));
      assert.deepEqual(sorted((await pc).map((g) => g.data)), sorted(toC));
      await Promise.all([a.close(), b.close(), c.close()]);
    });

    await t.test('a sender may reuse its batch right after sendBatch returns', async () => {
      const [a, b] = [await must(impl.open), await must(impl.open)];
      const batch = new PacketBatch(64, 64 * 100);
      const expected: Buffer[] = [];
      const p = collect(b, 64 * 5);
      for (let round = 0; round < 5; round++) {
        batch.reset();
        for (let i = 0; i < 64; i++) {
          const off = batch.reserve(100, ipv4ToU32(LO), b.localAddress.port);
          batch.buf.fill(round * 64 + i, off, off + 100);
          expected.push(Buffer.from(batch.buf.subarray(off, off + 100)));
        }
        assert.equal(a.sendBatch(batch), 64);
      }
      assert.deepEqual(sorted((await p).map((g) => g.data)), sorted(expected));
      await Promise.all([a.close(), b.close()]);
    });

    await t.test('stats count packets and bytes', async () => {
      const [a, b] = [await must(impl.open), await must(impl.open)];
      const batch = new PacketBatch(10, 10 * 300);
      for (let i = 0; i < 10; i++) batch.push(Buffer.alloc(300, i), ipv4ToU32(LO), b.localAddress.port);
      const p = collect(b, 10);
      a.sendBatch(batch);
      await p;
      assert.equal(a.stats().txPackets, 10);
      assert.equal(a.stats().txBytes, 3000);
      assert.equal(b.stats().rxPackets, 10);
      assert.equal(b.stats().rxBytes, 3000);
      assert.ok(b.stats().rxBatches >= 1);
      await Promise.all([a.close(), b.close()]);
    });

    await t.test('close: idempotent, sends return 0, no more batches, port is free again', async () => {
      const [a, b] = [await must(impl.open), await must(impl.open)];
      const port = b.localAddress.port;
      let batches = 0;
      b.onReceive(() => batches++);
      await b.close();
      await b.close();
      a.send(Buffer.from('late'), LO, port);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(batches, 0);
      await a.close();
      assert.equal(a.send(Buffer.from('x'), LO, port), 0);
      const one = new PacketBatch(1, 8);
      one.push(Buffer.from('x'), ipv4ToU32(LO), port);
      assert.equal(a.sendBatch(one), 0);
      const again = await must(impl.open, port);
      assert.equal(again.localAddress.port, port);
      await again.close();
    });

    await t.test('errors are values: in-use port, bad host, bad port', async () => {
      const a = await must(impl.open);
      const r = await impl.open(a.localAddress.port);
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.equal(r.error.code, 'invalid_argument');
        assert.equal(r.error.detail?.errno, 'EADDRINUSE');
        assert.match(r.error.hint ?? '', /port/);
      }
      await a.close();
      const bad = impl.name === 'native' ? openNativeDatapath : openDgramDatapath;
      const h = await bad({ host: 'not-an-ip', port: 0, logger });
      assert.equal(h.ok ? 'ok' : h.error.code, 'invalid_argument');
      const p = await bad({ host: LO, port: 70000, logger });
      assert.equal(p.ok ? 'ok' : p.error.code, 'invalid_argument');
      const na = await bad({ host: '192.0.2.77', port: 0, logger });
      assert.equal(na.ok ? 'ok' : na.error.code, 'invalid_argument');
    });
  });
}

test('ipv4 helpers', () => {
  assert.equal(ipv4ToU32('127.0.0.1'), 0x7f000001);
  assert.equal(ipv4ToU32('255.255.255.255'), 0xffffffff);
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', 'a.b.c.d', '1..2.3', '1.2.3.']) assert.equal(ipv4ToU32(bad), -1, bad);
  assert.equal(u32ToIpv4(0xc0a80101), '192.168.1.1');
});

test('openDatapath picks native when built, dgram when PILOT_NATIVE=0 or preferNative=false', async () => {
  const d = await openDatapath({ host: LO, port: 0, logger });
  assert.ok(d.ok);
  assert.equal(d.value.kind, nativeSkip === false ? 'native' : 'dgram');
  await d.value.close();
  const f = await openDatapath({ host: LO, port: 0, logger, preferNative: false });
  assert.ok(f.ok);
  assert.equal(f.value.kind, 'dgram');
  await f.value.close();
  const prev = process.env.PILOT_NATIVE;
  process.env.PILOT_NATIVE = '0';
  try {
    const g = await openDatapath({ host: LO, port: 0, logger });
    assert.ok(g.ok);
    assert.equal(g.value.kind, 'dgram');
    await g.value.close();
  } finally {
    if (prev === undefined) delete process.env.PILOT_NATIVE;
    else process.env.PILOT_NATIVE = prev;
  }
});

test('native: clean exit with sockets left open (receiving, under traffic, unref); a throwing handler is uncaught', { skip: nativeSkip }, () => {
  // Under tsx the child is .ts; in the compiled run (dist/test) it is .js and needs no loader.
  const isTs = import.meta.url.endsWith('.ts');
  const child = fileURLToPath(new URL(isTs ? './exit-child.ts' : './exit-child.js', import.meta.url));
  for (const mode of ['exit', 'unref', 'traffic', 'throw']) {
    const r = spawnSync(process.execPath, [...(isTs ? ['--import', 'tsx'] : []), child, mode], { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 0, `${mode}: status ${r.status} signal ${r.signal}\n${r.stderr}`);
    assert.match(r.stdout, /ready/, mode);
  }
});
