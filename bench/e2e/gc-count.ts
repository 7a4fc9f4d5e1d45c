// A preload (`node --import file:///…/gc-count.js?dir=DIR`) for the bench's --gc passes: counts this process's
// garbage collections by kind (perf_hooks' gc entries) and writes them, with their pause time, to DIR/<pid>.json
// when the process exits. The bench names the files by the pids it started. The directory rides in the import
// URL so that one flag reaches daemons and SDK workers alike (they get different environments).
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const params = new URL(import.meta.url).searchParams;
const dir = params.get('dir');
if (dir) {
  const counts = { major: 0, minor: 0, incremental: 0, weakcb: 0, majorMs: 0, minorMs: 0, incrementalMs: 0, externalMemoryMajor: 0, peakArrayBuffersMiB: 0 };
  const take = (entries: PerformanceEntry[]): void => {
    for (const e of entries) {
      const detail = (e as unknown as { detail?: { kind?: number; flags?: number } }).detail;
      const kind = detail?.kind ?? 0;
      // V8 flags a collection it started because external memory (ArrayBuffer backing stores) grew past its limit.
      if (((detail?.flags ?? 0) & constants.NODE_PERFORMANCE_GC_FLAGS_ALL_EXTERNAL_MEMORY) !== 0) counts.externalMemoryMajor++;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) (counts.major++, (counts.majorMs += e.duration));
      else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) (counts.minor++, (counts.minorMs += e.duration));
      else if (kind === constants.NODE_PERFORMANCE_GC_INCREMENTAL) (counts.incremental++, (counts.incrementalMs += e.duration));
      else if (kind === constants.NODE_PERFORMANCE_GC_WEAKCB) counts.weakcb++;
    }
  };
  const obs = new PerformanceObserver((list) => take(list.getEntries()));
  // Backing stores held (sampled): what external-memory-driven collections are about.
  const sample = setInterval(() => {
    const mib = process.memoryUsage().arrayBuffers / 1048576;
    if (mib > counts.peakArrayBuffersMiB) counts.peakArrayBuffersMiB = Math.round(mib);
  }, 50);
  sample.unref();
  obs.observe({ entryTypes: ['gc'] });
  process.on('exit', () => {
    take(obs.takeRecords());
    try {
      writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify(counts));
    } catch {
      /* the bench reports the process as missing */
    }
  });
}

// ?heap=1: V8's sampling heap profiler, keeping samples that survived to a major GC (what promotion costs),
// summarised on exit into DIR/<pid>-heap.json: the allocation sites by bytes, heaviest first.
if (dir && params.get('heap') === '1') {
  const { Session } = await import('node:inspector');
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false });
  interface HeapNode {
    callFrame: { functionName: string; url: string; lineNumber: number };
    selfSize: number;
    children: HeapNode[];
  }
  process.on('exit', () => {
    session.post('HeapProfiler.stopSampling', (e, r) => {
      if (e || !r) return;
      const sites = new Map<string, number>();
      const walk = (n: HeapNode, parent: string): void => {
        const f = n.callFrame;
        const here = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/dist\//, '')}:${f.lineNumber + 1}`;
        // Builtins (subarray, Buffer.from…) are named by their caller: that is the line to change.
        const key = f.url === '' || f.url.startsWith('node:') ? `${here} ← ${parent}` : here;
        if (n.selfSize > 0) sites.set(key, (sites.get(key) ?? 0) + n.selfSize);
        for (const c of n.children) walk(c, here);
      };
      walk((r as unknown as { profile: { head: HeapNode } }).profile.head, '(root)');
      const top = [...sites.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([site, bytes]) => ({ site, mib: +(bytes / 1048576).toFixed(2) }));
      try {
        writeFileSync(join(dir, `${process.pid}-heap.json`), JSON.stringify(top));
      } catch {
        /* reported missing */
      }
    });
  });
}
