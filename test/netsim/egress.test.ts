// The compat-transport networks (issue 13) without daemons: a NAT that drops its LAN's UDP (toggled at runtime),
// and a NAT under which only TCP to tinyproxy gets out (CONNECT with basic auth works, without is refused, direct
// TCP and UDP fail). Root + nftables + tinyproxy only; skipped with one line elsewhere.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { netsimUnavailableReason, which } from '../../netsim/exec.js';
import { formatEgressChecks, runEgressCheck } from '../../netsim/egress-check.js';

const why = netsimUnavailableReason() ?? (which('tinyproxy') ? null : 'needs tinyproxy: apt-get install -y tinyproxy');

describe('netsim egress filters and HTTP proxy', { skip: why ?? false }, () => {
  it('UDP blocked / unblocked at runtime; proxy-only LAN reaches nothing but the proxy', { timeout: 60_000 }, async (t) => {
    const t0 = performance.now();
    const r = await runEgressCheck();
    assert.ok(r.ok, r.ok ? '' : `${r.error.message} ${JSON.stringify(r.error.detail ?? {})}`);
    for (const line of formatEgressChecks(r.value).split('\n')) t.diagnostic(line);
    t.diagnostic(`${(performance.now() - t0).toFixed(0)} ms`);
    assert.equal(r.value.length, 12);
    for (const c of r.value) assert.ok(c.pass, `${c.name}: ${c.observed}`);
  });
});
