// Every NAT kind observed from outside (reflector on two IPs, unsolicited probes, hairpin between two LAN
// hosts), plus mapping expiry. Root + nftables only; skipped with one line elsewhere.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { netsimUnavailableReason } from '../../netsim/exec.js';
import { NAT_EXPECTATIONS } from '../../netsim/nat.js';
import { formatNatTable, runMappingTimeoutCheck, runNatSelftest } from '../../netsim/selftest.js';

const why = netsimUnavailableReason();

// One skip line for the whole file when netsim cannot run here.
describe('netsim NAT kinds', { skip: why ?? false }, () => {
  it('NAT kinds: mapping, port allocation, filtering, hairpin, two hosts', { timeout: 90_000 }, async (t) => {
    const t0 = performance.now();
    const r = await runNatSelftest();
    assert.ok(r.ok, r.ok ? '' : `${r.error.message} ${JSON.stringify(r.error.detail ?? {})}`);
    for (const line of formatNatTable(r.value).split('\n')) t.diagnostic(line);
    t.diagnostic(`${(performance.now() - t0).toFixed(0)} ms`);
    assert.equal(r.value.length, 7);
    for (const row of r.value) {
      const want = NAT_EXPECTATIONS[row.kind];
      assert.equal(row.mapping, want.mapping, `${row.label} mapping (${row.mapped.join(' ')})`);
      assert.equal(row.ports, want.ports, `${row.label} ports (${row.mapped.join(' ')})`);
      assert.equal(row.filtering, want.filtering, `${row.label} filtering`);
      if (row.hairpinConfigured !== null) assert.equal(row.hairpin, row.hairpinConfigured, `${row.label} hairpin`);
      if (row.distinctMappings !== null) assert.equal(row.distinctMappings, true, `${row.label} two hosts`);
      assert.deepEqual(row.problems, [], row.label);
    }
  });

  it('mapping timeout: a full-cone mapping stops admitting inbound after it idles out', { timeout: 60_000 }, async () => {
    const r = await runMappingTimeoutCheck(2);
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.equal(r.value.conntrackTimeoutS, 2);
    assert.equal(r.value.inboundBeforeExpiry, true);
    assert.equal(r.value.inboundAfterExpiry, false);
  });
});
