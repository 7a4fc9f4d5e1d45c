// A preload (`node --import file:///…/gc-count.js?dir=DIR`) for the bench's --gc passes: counts this process's
// garbage collections by kind (perf_hooks' gc entries) and writes them, with their pause time, to DIR/<pid>.json
// when the process exits. The bench names the files by the pids it started. The directory rides in the import
// URL so that one flag reaches daemons and SDK workers alike (they get different environments).
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = new URL(import.meta.url).searchParams.get('dir');
if (dir) {
  const counts = { major: 0, minor: 0, incremental: 0, weakcb: 0, majorMs: 0, minorMs: 0, incrementalMs: 0 };
  const take = (entries: PerformanceEntry[]): void => {
    for (const e of entries) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) (counts.major++, (counts.majorMs += e.duration));
      else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) (counts.minor++, (counts.minorMs += e.duration));
      else if (kind === constants.NODE_PERFORMANCE_GC_INCREMENTAL) (counts.incremental++, (counts.incrementalMs += e.duration));
      else if (kind === constants.NODE_PERFORMANCE_GC_WEAKCB) counts.weakcb++;
    }
  };
  const obs = new PerformanceObserver((list) => take(list.getEntries()));
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
