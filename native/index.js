// Loader for the pilot-datapath addon (hand-written: the crate uses raw N-API, so napi-rs generates none).
// Imported only by src/datapath/native.ts. Never throws: a missing or broken build is a value.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
export const NATIVE_ADDON_PATH = fileURLToPath(new URL('./pilot-datapath.node', import.meta.url));

/** @returns {{ ok: true, binding: import('./index.js').NativeBinding } | { ok: false, reason: string, cause?: unknown }} */
export function loadNativeBinding() {
  if (process.platform !== 'linux') return { ok: false, reason: `native datapath is Linux-only (here: ${process.platform})` };
  if (!existsSync(NATIVE_ADDON_PATH)) return { ok: false, reason: 'native addon not built (run `npm run build:native`)' };
  try {
    return { ok: true, binding: require(NATIVE_ADDON_PATH) };
  } catch (cause) {
    return { ok: false, reason: `native addon failed to load: ${cause instanceof Error ? cause.message : String(cause)}`, cause };
  }
}
