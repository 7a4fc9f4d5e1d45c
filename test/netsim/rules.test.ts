// Pure checks of netsim's generated rules and scenario tables; no root needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { egressRuleset, NAT_KINDS, natRuleset, natSysctls, parseIpv4Endpoint, parseNatKind } from '../../netsim/nat.js';
import { tinyproxyConfig } from '../../netsim/proxy.js';
import { lossRuleset, needsUserspaceLink, tbfArgs } from '../../netsim/link.js';
import { expectedPath, findScenario, matrixPairs, pairSpec, SCENARIOS } from '../../netsim/scenario.js';

const params = { wanIf: 'pn-wan', lanIf: 'pn-br', publicIp: '198.18.1.1', lanCidr: '192.168.1.0/24' };

test('every NAT kind but none yields a ruleset that drops unsolicited WAN flows', () => {
  for (const kind of NAT_KINDS) {
    const rules = natRuleset({ kind }, params);
    if (kind === 'none') {
      assert.equal(rules, '');
      continue;
    }
    assert.match(rules, /iifname "pn-wan" ct state new drop/, kind);
    assert.match(rules, /delete table ip pn_nat/, kind);
  }
});

test('kind-specific mapping and filtering rules', () => {
  const fc = natRuleset({ kind: 'full-cone' }, params);
  assert.match(fc, /iifname "pn-wan" ip daddr 198\.18\.1\.1 meta l4proto udp dnat ip to udp dport map @rev/);
  const rc = natRuleset({ kind: 'restricted-cone' }, params);
  assert.match(rc, /ip saddr \. udp dport @seen dnat/);
  assert.match(rc, /update @seen/);
  const prc = natRuleset({ kind: 'port-restricted-cone' }, params);
  assert.doesNotMatch(prc, /iifname "pn-wan"[^\n]*dnat ip to/);
  assert.match(prc, /snat ip to 198\.18\.1\.1 : ip saddr \. udp sport map @eim/);
  const seq = natRuleset({ kind: 'symmetric-sequential', sequentialBasePort: 30000 }, params);
  assert.match(seq, /numgen inc mod 1000 map \{ 0 : 30000, 1 : 30001,/);
  const rnd = natRuleset({ kind: 'symmetric-random' }, params);
  assert.match(rnd, /snat ip to 198\.18\.1\.1 fully-random/);
  assert.doesNotMatch(rnd, /map @eim/);
});

test('hairpin adds LAN-side DNAT and SNAT; timeouts reach sets and sysctls', () => {
  const off = natRuleset({ kind: 'full-cone' }, params);
  const on = natRuleset({ kind: 'full-cone', hairpin: true, mappingTimeoutS: 7 }, params);
  assert.doesNotMatch(off, /iifname "pn-br" ip daddr 198\.18\.1\.1 meta l4proto udp dnat/);
  assert.match(on, /iifname "pn-br" ip daddr 198\.18\.1\.1 meta l4proto udp dnat/);
  assert.match(on, /oifname "pn-br" ct status dnat/);
  assert.match(on, /timeout 7s/);
  assert.deepEqual(natSysctls({ kind: 'full-cone', mappingTimeoutS: 7 }), {
    'net.netfilter.nf_conntrack_udp_timeout': '7',
    'net.netfilter.nf_conntrack_udp_timeout_stream': '7',
  });
});

test('link rules', () => {
  assert.match(lossRuleset('pn-eth0', 2.5), /numgen random mod 10000 < 250 drop/);
  assert.deepEqual(tbfArgs('pn-wan', 1000).slice(0, 9), ['tc', 'qdisc', 'replace', 'dev', 'pn-wan', 'root', 'tbf', 'rate', '1000kbit']);
  assert.equal(needsUserspaceLink({ lossPct: 5, rateKbit: 100 }), false);
  assert.equal(needsUserspaceLink({ delayMs: 1 }), true);
  assert.equal(needsUserspaceLink(undefined), false);
});

test('scenarios, aliases and expected paths', () => {
  assert.equal(parseNatKind('cone'), 'port-restricted-cone');
  assert.equal(parseNatKind('bogus'), null);
  assert.equal(expectedPath('port-restricted-cone', 'port-restricted-cone'), 'direct');
  assert.equal(expectedPath('port-restricted-cone', 'symmetric-random'), 'relay');
  assert.equal(expectedPath('restricted-cone', 'symmetric-random'), 'direct');
  assert.equal(expectedPath('symmetric-random', 'symmetric-sequential'), 'relay');
  assert.equal(expectedPath('none', 'symmetric-random'), 'direct');
  assert.equal(matrixPairs().length, (NAT_KINDS.length * (NAT_KINDS.length + 1)) / 2);
  for (const s of Object.values(SCENARIOS)) {
    const names = [...(s.spec.publicHosts ?? []).map((h) => h.name), ...(s.spec.nats ?? []).flatMap((n) => n.hosts.map((h) => h.name))];
    assert.ok(names.includes('rendezvous') && names.includes('a') && names.includes('b'), s.name);
  }
  assert.equal(findScenario('full--sym-seq')?.expect, 'direct');
  const same = pairSpec('full-cone', 'none', { sameNat: true, hairpin: true });
  assert.equal(same.nats?.length, 1);
  assert.equal(same.nats?.[0]?.hairpin, true);
  const pub = pairSpec('none', 'symmetric-random');
  assert.deepEqual(pub.publicHosts?.map((h) => h.name), ['rendezvous', 'a']);
});

test('egress filter: empty by default, UDP block rules tagged, proxy-only accepts only TCP to the proxy', () => {
  const none = egressRuleset({ kind: 'port-restricted-cone' }, params);
  assert.match(none, /delete table ip pn_egress/);
  assert.match(none, /hook forward priority filter - 10/);
  assert.doesNotMatch(none, /drop/);
  const blk = egressRuleset({ kind: 'port-restricted-cone', blockUdp: true }, params);
  assert.match(blk, /iifname "pn-br" oifname "pn-wan" meta l4proto udp drop comment "pn-udp-block"/);
  assert.match(blk, /iifname "pn-wan" oifname "pn-br" meta l4proto udp drop comment "pn-udp-block"/);
  const px = egressRuleset({ kind: 'port-restricted-cone', proxyOnly: 'proxy:3128' }, params, '198.18.101.10:3128');
  const accept = px.indexOf('ip daddr 198.18.101.10 tcp dport 3128 accept');
  const drop = px.indexOf('iifname "pn-br" oifname "pn-wan" drop');
  assert.ok(accept > 0 && drop > accept, px);
  assert.deepEqual(parseIpv4Endpoint('198.18.101.10:3128'), { ip: '198.18.101.10', port: 3128 });
  for (const bad of ['proxy:3128', '1.2.3.256:1', '1.2.3.4:0', '1.2.3.4:65536', '1.2.3.4']) assert.equal(parseIpv4Endpoint(bad), null, bad);
});

test('tinyproxy config: port, listen, allow, ConnectPort 443, basic auth', () => {
  const c = tinyproxyConfig('198.18.101.10');
  for (const line of ['Port 3128', 'Listen 198.18.101.10', 'Allow 198.18.0.0/15', 'ConnectPort 443', 'BasicAuth user pass']) {
    assert.ok(c.split('\n').includes(line), `${line} in\n${c}`);
  }
  assert.doesNotMatch(tinyproxyConfig('198.18.101.10', { auth: null, connectPorts: [] }), /BasicAuth|ConnectPort/);
});
