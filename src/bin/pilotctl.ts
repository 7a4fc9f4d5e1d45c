#!/usr/bin/env -S node --initial-old-space-size=64
// pilotctl: the Pilot Protocol CLI (see src/cli/main.ts). First SIGINT asks streaming commands to stop and
// print what they have; a second one exits at once.
import { fileURLToPath } from 'node:url';
import { runCli } from '../cli/main.js';

const abort = new AbortController();
let interrupts = 0;
const onSignal = (): void => {
  interrupts++;
  if (interrupts > 1) process.exit(130);
  abort.abort();
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

const code = await runCli(
  process.argv.slice(2),
  {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    stdinIsTTY: process.stdin.isTTY === true,
    stderrIsTTY: process.stderr.isTTY === true,
    env: process.env,
    cwd: process.cwd(),
    scriptPath: fileURLToPath(import.meta.url),
  },
  { signal: abort.signal },
);
// Flush stdout/stderr before exiting: pipes are asynchronous in Node.
process.exitCode = code;
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
