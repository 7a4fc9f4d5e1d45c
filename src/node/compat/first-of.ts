// One connect attempt over several routes, preferred first (happy eyeballs, RFC 8305's idea): the first route
// at once, each next one when the one before it fails or after `headStartMs`, whichever is sooner. The first to
// connect wins; one that connects later is disposed of. All fail → the first route's error, with the others'
// messages appended (what `info` shows: why neither the plain registry port nor the compat port answered).
// The registry's routes come from src/nat/transport-choice.ts (registryRoutes); node.ts only supplies dialers.
import { errFrom, ok, type Result } from '../../core/result.js';
import { pilotError, type PilotError } from '../../core/errors.js';

export interface FirstOfOptions<R, T> {
  routes: readonly R[];
  dial: (route: R) => Promise<Result<T>>;
  /** Close a connection that came in after another route had won. */
  dispose: (value: T) => void;
  headStartMs: number;
  after: (ms: number, fn: () => void) => { cancel(): void };
}

export function dialFirstOf<R, T>(o: FirstOfOptions<R, T>): Promise<Result<{ route: R; value: T }>> {
  return new Promise((resolve) => {
    const errors: (PilotError | null)[] = o.routes.map(() => null);
    let started = 0;
    let failed = 0;
    let isSettled = false;
    let headStart: { cancel(): void } | null = null;
    const startNext = (): void => {
      if (isSettled || started >= o.routes.length) return;
      const i = started++;
      headStart?.cancel();
      headStart = started < o.routes.length ? o.after(o.headStartMs, startNext) : null;
      // A dialer that throws or rejects is a failed route, never an unhandled rejection in a timer.
      const dialed = Promise.resolve()
        .then(() => o.dial(o.routes[i]!))
        .catch((e: unknown): Result<T> => errFrom(pilotError('internal', `dial failed: ${e instanceof Error ? e.message : String(e)}`)));
      void dialed.then((r) => {
        if (isSettled) {
          if (r.ok) o.dispose(r.value);
          return;
        }
        if (r.ok) {
          isSettled = true;
          headStart?.cancel();
          resolve(ok({ route: o.routes[i]!, value: r.value }));
          return;
        }
        errors[i] = r.error;
        if (++failed < o.routes.length) {
          startNext();
          return;
        }
        isSettled = true;
        const [first, ...rest] = errors as PilotError[];
        const message = [first!.message, ...rest.map((e) => e.message)].join('; ');
        resolve(errFrom({ ...first!, message }));
      });
    };
    if (o.routes.length === 0) throw new Error('dialFirstOf: no routes');
    startNext();
  });
}
