// The dashboard's page (served by src/registry/dashboard.ts at `/`): one HTML document, no build step. It reads
// `/api/events` (SSE) and draws what `/api/stats` says: the figures (each element carries `data-figure="<json
// path>"` so a test can compare them with the API), three uPlot charts over the last five minutes, the NAT types
// the nodes report, and the latest registry events.
export const DASHBOARD_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pilot-rendezvous dashboard</title>
<link rel="stylesheet" href="/uplot.css">
<style>
  :root { --fg:#1d2330; --muted:#6b7385; --card:#ffffff; --bg:#f2f4f8; --accent:#2f6fde; --warn:#c0392b; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; align-items:baseline; gap:16px; padding:14px 22px; background:#1d2330; color:#fff; }
  header h1 { font-size:18px; margin:0; font-weight:600; }
  header .state { font-size:13px; color:#b8c2d6; }
  header .state.live::before { content:"●"; color:#3ecf6e; margin-right:6px; }
  header .state.down::before { content:"●"; color:var(--warn); margin-right:6px; }
  main { padding:18px 22px; display:grid; gap:16px; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); }
  .card { background:var(--card); border-radius:8px; padding:12px 14px; box-shadow:0 1px 2px rgba(0,0,0,.06); }
  .card h2 { font-size:12px; font-weight:600; color:var(--muted); margin:0 0 4px; text-transform:uppercase; letter-spacing:.04em; }
  .big { font-size:28px; font-weight:600; font-variant-numeric: tabular-nums; }
  .sub { color:var(--muted); font-size:12px; }
  .wide { grid-column: 1 / -1; }
  .half { grid-column: span 2; }
  table { width:100%; border-collapse:collapse; font-variant-numeric: tabular-nums; }
  td, th { text-align:left; padding:3px 6px; border-bottom:1px solid #eceff4; font-size:13px; }
  th { color:var(--muted); font-weight:600; }
  .charts { display:grid; gap:16px; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); }
</style>
</head>
<body>
<header><h1>pilot-rendezvous</h1><span id="state" class="state down">connecting…</span><span class="state" id="uptime"></span></header>
<main>
  <div class="card"><h2>Nodes online</h2><div class="big" data-figure="nodes.online">–</div><div class="sub"><span data-figure="nodes.registered">–</span> registered</div></div>
  <div class="card"><h2>Public nodes</h2><div class="big" data-figure="nodes.public">–</div><div class="sub"><span data-figure="nodes.legacy">–</span> original (v0.5) clients</div></div>
  <div class="card"><h2>Relayed share</h2><div class="big" data-figure="paths.relayed_pct" data-unit="%">–</div><div class="sub"><span data-figure="paths.direct">–</span> direct · <span data-figure="paths.relayed">–</span> relayed peer paths</div></div>
  <div class="card"><h2>Relayed</h2><div class="big" data-figure="relay.bytes" data-format="bytes">–</div><div class="sub"><span data-figure="relay.packets">–</span> packets · <span data-figure="relay.dropped">–</span> dropped</div></div>
  <div class="card"><h2>Trust pushes</h2><div class="big" data-figure="trust.pushes">–</div><div class="sub"><span data-figure="trust.edges">–</span> trust edges · <span data-figure="trust.pending_handshakes">–</span> pending</div></div>
  <div class="card"><h2>Transports</h2><div class="big"><span data-figure="transports.wss">–</span> <span class="sub">wss</span></div><div class="sub"><span data-figure="transports.udp">–</span> nodes on udp</div></div>
  <div class="card"><h2>Registry requests</h2><div class="big" data-figure="registry.requests">–</div><div class="sub"><span data-figure="registry.errors">–</span> errors · <span data-figure="registry.connections">–</span> connections</div></div>
  <div class="card wide charts">
    <div id="chart-nodes"></div><div id="chart-relay"></div><div id="chart-requests"></div>
  </div>
  <div class="card half"><h2>NAT types (online nodes that report)</h2><table id="nat"><tr><th>type</th><th>nodes</th></tr></table></div>
  <div class="card half"><h2>Recent events</h2><table id="events"><tr><th>time</th><th>event</th><th>node</th><th>hostname</th></tr></table></div>
</main>
<script src="/uplot.js"></script>
<script>
(function () {
  var WINDOW = 300;
  var series = { t: [], online: [], relayBps: [], reqps: [] };
  var last = null;
  var charts = {};
  function get(o, path) { return path.split('.').reduce(function (x, k) { return x == null ? x : x[k]; }, o); }
  function fmtBytes(n) { if (n == null) return 'n/a'; var u = ['B','KB','MB','GB','TB']; var i = 0; while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; } return (i ? n.toFixed(1) : n) + ' ' + u[i]; }
  function text(el, v) {
    if (v == null) { el.textContent = el.dataset.format === 'bytes' ? 'n/a' : '–'; return; }
    el.textContent = el.dataset.format === 'bytes' ? fmtBytes(v) : String(v) + (el.dataset.unit || '');
    el.dataset.value = String(v);
  }
  function short(v) { if (v == null) return ''; var a = Math.abs(v); return a >= 1e9 ? (v / 1e9).toFixed(1) + 'G' : a >= 1e6 ? (v / 1e6).toFixed(1) + 'M' : a >= 1e3 ? (v / 1e3).toFixed(1) + 'k' : String(Math.round(v * 10) / 10); }
  function chart(id, title, label, color) {
    var el = document.getElementById(id);
    return new uPlot({ title: title, width: Math.max(320, el.clientWidth || 360), height: 180,
      series: [{}, { label: label, stroke: color, width: 2, fill: color + '22', value: function (u, v) { return short(v); } }],
      axes: [{}, { size: 56, values: function (u, vals) { return vals.map(short); } }], scales: { x: { time: true } } }, [[], []], el);
  }
  function row(table, cells) {
    var tr = document.createElement('tr');
    cells.forEach(function (c) { var td = document.createElement('td'); td.textContent = c; tr.appendChild(td); });
    table.appendChild(tr);
    return tr;
  }
  function render(s) {
    document.querySelectorAll('[data-figure]').forEach(function (el) { text(el, get(s, el.dataset.figure)); });
    document.getElementById('uptime').textContent = 'up ' + s.uptime_s + ' s';
    var nat = document.getElementById('nat');
    while (nat.rows.length > 1) nat.deleteRow(1);
    var types = Object.keys(s.nat_types).sort();
    if (types.length === 0) row(nat, ['(no reports yet)', '']);
    types.forEach(function (t) { row(nat, [t === 'none' ? 'none (public address)' : t, String(s.nat_types[t])]).dataset.natType = t; });
    var ev = document.getElementById('events');
    while (ev.rows.length > 1) ev.deleteRow(1);
    s.events.slice().reverse().slice(0, 20).forEach(function (e) {
      row(ev, [new Date(e.time_ms).toLocaleTimeString(), e.kind, e.node_id == null ? '' : String(e.node_id), e.hostname || '']);
    });
    var t = s.time_ms / 1000;
    var dt = last ? Math.max(0.001, t - last.t) : 1;
    series.t.push(t);
    series.online.push(s.nodes.online);
    series.relayBps.push(last && s.relay.bytes != null && last.bytes != null ? Math.max(0, (s.relay.bytes - last.bytes) / dt) : 0);
    series.reqps.push(last ? Math.max(0, (s.registry.requests - last.req) / dt) : 0);
    for (var k in series) if (series[k].length > WINDOW) series[k].shift();
    last = { t: t, bytes: s.relay.bytes, req: s.registry.requests };
    if (window.uPlot) {
      if (!charts.nodes) {
        charts.nodes = chart('chart-nodes', 'Nodes online', 'online', '#2f6fde');
        charts.relay = chart('chart-relay', 'Relay throughput (bytes/s)', 'bytes/s', '#e67e22');
        charts.req = chart('chart-requests', 'Registry requests/s', 'req/s', '#16a085');
      }
      charts.nodes.setData([series.t, series.online]);
      charts.relay.setData([series.t, series.relayBps]);
      charts.req.setData([series.t, series.reqps]);
    }
    document.body.dataset.updated = String(s.time_ms);
  }
  var state = document.getElementById('state');
  var es = new EventSource('/api/events');
  es.addEventListener('stats', function (m) { state.className = 'state live'; state.textContent = 'live'; render(JSON.parse(m.data)); });
  es.onerror = function () { state.className = 'state down'; state.textContent = 'reconnecting…'; };
})();
</script>
</body>
</html>
`;
