// Locates the project's executables for tests that spawn real processes. Compiled runs (npm test, from
// dist/test) use dist/src/bin/*.js; tsx runs (from test/) use src/bin/*.ts through the tsx loader.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type BinName = 'pilotctl' | 'pilot-daemon' | 'pilot-rendezvous';

/** argv prefix to run a bin: `[process.execPath, ...flags, script]`. */
export function binCommand(name: BinName): string[] {
  const js = fileURLToPath(new URL(`../../src/bin/${name}.js`, import.meta.url));
  if (import.meta.url.endsWith('.js') && existsSync(js)) return [process.execPath, js];
  const ts = fileURLToPath(new URL(`../../src/bin/${name}.ts`, import.meta.url));
  // tsx by absolute URL: a bare `--import tsx` resolves from the child's cwd, which tests may change.
  return [process.execPath, '--import', import.meta.resolve('tsx'), ts];
}
