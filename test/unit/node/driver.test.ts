import test from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { Driver, VirtualTimers } from '../../../src/node/driver.js';

function world() {
  const clock = new ManualClock(0);
  const timers = new VirtualTimers(clock);
  const driver = new Driver(clock, timers);
  const run = (untilUs: number) => {
    while (timers.step(untilUs));
    if (clock.nowUs() < untilUs) clock.set(untilUs);
  };
  return { clock, timers, driver, run };
}

test('driver: deadlines fire in time order on one armed timer, ties in insertion order', () => {
  const { driver, run, clock } = world();
  const seen: string[] = [];
  driver.at(3000, () => seen.push(`c@${clock.nowUs()}`));
  driver.at(1000, () => seen.push(`a@${clock.nowUs()}`));
  driver.at(1000, () => seen.push(`b@${clock.nowUs()}`));
  const d = driver.at(2000, () => seen.push('cancelled'));
  d.cancel();
  assert.equal(d.isActive, false);
  run(10_000);
  assert.deepEqual(seen, ['a@1000', 'b@1000', 'c@3000']);
  assert.equal(driver.pending, 0);
});

test('driver: every() repeats until cancelled; after() is relative to now', () => {
  const { driver, run, clock } = world();
  const ticks: number[] = [];
  const h = driver.every(100, () => ticks.push(clock.nowUs()));
  run(350_000);
  h.cancel();
  run(1_000_000);
  assert.deepEqual(ticks, [100_000, 200_000, 300_000]);
  let at = -1;
  driver.after(5, () => (at = clock.nowUs()));
  run(2_000_000);
  assert.equal(at, 1_005_000);
});

test('driver: one flush per turn however many requests; a fired deadline is followed by a flush', () => {
  const { driver, timers } = world();
  let flushes = 0;
  driver.onFlush(() => flushes++);
  driver.requestFlush();
  driver.requestFlush();
  driver.requestFlush();
  timers.drainSoon();
  assert.equal(flushes, 1);
  driver.after(1, () => undefined);
  while (timers.step(10_000));
  assert.equal(flushes, 2);
});

test('driver: close cancels everything and later deadlines never fire', () => {
  const { driver, run } = world();
  let fired = 0;
  driver.after(1, () => fired++);
  driver.close();
  driver.after(1, () => fired++);
  run(100_000);
  assert.equal(fired, 0);
});
