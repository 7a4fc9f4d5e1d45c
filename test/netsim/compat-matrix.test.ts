// The matrix's compat-transport cells (issue 13) with real daemons: UDP dropped at one or both NATs, only an HTTP
// proxy (tinyproxy, basic auth) out of one LAN, and UDP unblocked mid-stream. Every cell: trust handshake, a 2 MiB
// echo stream byte-exact, `pilotctl peers --json` path relay + transport wss on the blocked side (udp-unblock:
// back to udp and direct, the stream not reset). Root + nftables (+ tinyproxy); skipped with one line elsewhere.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netsimUnavailableReason, which } from '../../netsim/exec.js';
import { COMPAT_CELL_NAMES, COMPAT_CELLS, compatTrialPassed, runCompatTrial, summariseCompat, type CompatTrialResult } from '../../netsim/compat-cells.js';
import { matrixMarkdown, writeMatrixResults, type MatrixCell } from '../../netsim/matrix.js';

const why = netsimUnavailableReason();
const trials = Number(process.env.PILOT_MATRIX_TRIALS ?? 1);

describe('netsim compat-transport cells (real daemons)', { skip: why ?? false }, () => {
  const cells: MatrixCell[] = [];
  after(() => {
    if (cells.length === 0) return;
    const dir = process.env.PILOT_MATRIX_OUT ?? join(tmpdir(), 'pilot-netsim-compat');
    const files = writeMatrixResults(cells, dir, { trials, source: 'test/netsim/compat-matrix.test.ts' });
    process.stdout.write(`# ${matrixMarkdown(cells).split('\n').join('\n# ')}\n# wrote ${files.join(', ')}\n`);
  });

  for (const name of COMPAT_CELL_NAMES) {
    const cell = COMPAT_CELLS[name];
    const skip = cell.hasProxy && !which('tinyproxy') ? 'needs tinyproxy: apt-get install -y tinyproxy' : false;
    it(`${name}: ${cell.description}`, { timeout: 100_000 * trials, skip }, async (t) => {
      const results: CompatTrialResult[] = [];
      for (let i = 0; i < trials; i++) results.push(await runCompatTrial(name));
      cells.push(summariseCompat(name, results));
      for (const r of results) {
        const st = r.stream;
        t.diagnostic(
          `${(r.elapsedMs / 1000).toFixed(1)} s; wss after ${r.wssAfterMs ?? '–'} ms; ttfb ${r.ttfbMs === null ? '–' : Math.round(r.ttfbMs)} ms; ` +
            `stream ${st ? `${(st.bytesSent / 1e6).toFixed(1)} MB in ${st.elapsedMs} ms (first echo after ${st.ttfbMs ?? '–'} ms), exact ${st.isExact}` : 'none'}` +
            (cell.isUnblock ? `; udp ${r.udpAfterUnblockMs ?? '–'} ms / direct ${r.directAfterUnblockMs ?? '–'} ms after unblocking` : ''),
        );
        t.diagnostic(`a: ${JSON.stringify(r.sideA)}; b: ${JSON.stringify(r.sideB)}${r.beforeUnblock ? `; a before unblock: ${JSON.stringify(r.beforeUnblock)}` : ''}`);
        assert.ok(compatTrialPassed(r), r.error ?? r.problems.join('; '));
      }
    });
  }
});
