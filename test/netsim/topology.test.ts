// Topology API and cleanup guarantees: exec/spawn/ipOf, teardown on success, throw, timeout, SIGTERM, and
// reaping what a SIGKILLed run left. Root + nftables only; skipped with one line elsewhere.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { netsimUnavailableReason, which } from '../../netsim/exec.js';
import { runPair } from '../../netsim/scenario.js';
import { buildTopology, reapStale, withTopology } from '../../netsim/topology.js';

const why = netsimUnavailableReason();
const opts = { timeout: 60_000 };

// One skip line for the whole file when netsim cannot run here.
describe('netsim topology', { skip: why ?? false }, () => {
  function netnsList(): string[] {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter(Boolean);
  }

  function isPidAlive(pid: number): boolean {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  it('runPair: exec and spawn inside namespaces, addresses, teardown', opts, async () => {
    let namespaces: string[] = [];
    let sleeperPid = 0;
    const r = await runPair('port-restricted-cone', 'none', async ({ topo, a, b, rendezvous }) => {
      namespaces = topo.namespaces;
      assert.equal(a.role, 'lan');
      assert.equal(b.role, 'public');
      assert.equal(topo.ipOf('a'), '192.168.1.2');
      assert.equal(topo.publicIpOf('a'), '198.18.1.1');
      assert.deepEqual(rendezvous.ips, ['198.18.100.10', '198.18.100.11']);
      const addr = await topo.exec('a', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'pn-eth0']);
      assert.ok(addr.ok && addr.value.code === 0);
      assert.match(addr.value.stdout, /192\.168\.1\.2\/24/);
      // a routes to the rendezvous through its NAT router
      const route = await topo.exec('a', ['ip', 'route', 'get', rendezvous.ip]);
      assert.ok(route.ok);
      assert.match(route.value.stdout, /via 192\.168\.1\.1/);
      const child = topo.spawn('b', ['sh', '-c', 'echo "$PN_X"; exec sleep 30'], { env: { ...process.env, PN_X: 'hello' } });
      const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
      assert.equal(line, 'hello');
      sleeperPid = child.pid!;
      const bad = await topo.exec('b', ['sh', '-c', 'exit 3']);
      assert.ok(bad.ok && bad.value.code === 3, 'non-zero exit is a value, not an error');
      return 'done';
    });
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.equal(r.value, 'done');
    assert.ok(namespaces.length === 5);
    const left = netnsList();
    for (const ns of namespaces) assert.ok(!left.includes(ns), `${ns} still exists`);
    assert.equal(isPidAlive(sleeperPid), false, 'spawned process killed at teardown');
  });

  it('withTopology tears down when fn throws and when it times out', opts, async () => {
    let ns: string[] = [];
    const thrown = await withTopology({ publicHosts: [{ name: 'x' }] }, async (topo) => {
      ns = topo.namespaces;
      throw new Error('boom');
    });
    assert.ok(!thrown.ok && thrown.error.code === 'internal' && thrown.error.message.includes('boom'));
    assert.ok(ns.length === 2 && ns.every((n) => !netnsList().includes(n)));
    const slow = await withTopology(
      { publicHosts: [{ name: 'x' }] },
      async (topo) => {
        ns = topo.namespaces;
        await new Promise((r) => setTimeout(r, 5000));
      },
      { timeoutMs: 300 },
    );
    assert.ok(!slow.ok && slow.error.code === 'timeout');
    assert.ok(ns.every((n) => !netnsList().includes(n)));
  });

  it('bad specs are rejected before anything is created', opts, async () => {
    const before = netnsList().length;
    const dup = await buildTopology({ publicHosts: [{ name: 'x' }, { name: 'x' }] });
    assert.ok(!dup.ok && dup.error.code === 'invalid_argument');
    const badName = await buildTopology({ publicHosts: [{ name: 'Bad Name' }] });
    assert.ok(!badName.ok && badName.error.code === 'invalid_argument');
    const none = await buildTopology({ nats: [{ name: 'n', kind: 'none', hosts: [] }] });
    assert.ok(!none.ok && none.error.code === 'invalid_argument');
    assert.ok(netnsList().length <= before);
  });

  // A separate process that builds a topology (with a TAP delay link) and waits; prints its namespaces.
  function holdTopology(): { child: ReturnType<typeof spawn>; namespaces: Promise<string[]> } {
    const isTs = import.meta.url.endsWith('.ts');
    const mod = new URL(`../../netsim/topology.${isTs ? 'ts' : 'js'}`, import.meta.url).href;
    const code = `
      const { buildTopology } = await import(${JSON.stringify(mod)});
      const r = await buildTopology({ publicHosts: [{ name: 'x' }], nats: [{ name: 'n', kind: 'full-cone', hosts: [{ name: 'h'${which('gcc') ? ', link: { delayMs: 5 }' : ''} }] }] });
      if (!r.ok) { console.error(r.error.message); process.exit(3); }
      console.log(JSON.stringify(r.value.namespaces));
      setInterval(() => {}, 1000);`;
    const argv = [...(isTs ? ['--import', 'tsx'] : []), '--input-type=module', '-e', code];
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    const namespaces = new Promise<string[]>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', (l) => resolve(JSON.parse(l) as string[]));
      child.once('exit', (c) => reject(new Error(`holder exited ${c}`)));
    });
    return { child, namespaces };
  }

  it('SIGTERM tears the topology down', opts, async () => {
    const { child, namespaces } = holdTopology();
    const ns = await namespaces;
    assert.ok(ns.every((n) => netnsList().includes(n)));
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    child.kill('SIGTERM');
    assert.equal(await exited, 143);
    const left = netnsList();
    assert.ok(ns.every((n) => !left.includes(n)), `left: ${ns.filter((n) => left.includes(n))}`);
  });

  it('a SIGKILLed run is reaped by the next one', opts, async () => {
    const { child, namespaces } = holdTopology();
    const ns = await namespaces;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    assert.ok(ns.some((n) => netnsList().includes(n)), 'SIGKILL leaves namespaces behind');
    await reapStale();
    const left = netnsList();
    assert.ok(ns.every((n) => !left.includes(n)), `left: ${ns.filter((n) => left.includes(n))}`);
  });
});
