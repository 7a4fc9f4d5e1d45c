// Test-only pilot-daemon stand-in: serves the in-memory FakeNode on --socket (other daemon flags are accepted
// and ignored) until IPC shutdown or SIGTERM. Used through PILOT_DAEMON_BIN by the daemon start/stop tests.
import { serveIpc } from '../../../src/ipc/server.js';
import { homePaths } from '../../../src/ipc/paths.js';
import { FakeNode, ipcAuth } from '../ipc/fake-node.js';

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
if (process.env.FAKE_DAEMON_FAIL === '1') {
  console.log('fake daemon: refusing to start (FAKE_DAEMON_FAIL=1)');
  process.exit(3);
}
const home = flag('home') ?? '.';
const socketPath = flag('socket') ?? homePaths(home).socket;
const node = new FakeNode();
const hostname = flag('hostname');
if (hostname) node.hostname = hostname;
const r = await serveIpc(node, { socketPath, ...ipcAuth(home) });
if (!r.ok) {
  console.log(`fake daemon: ${r.error.message}`);
  process.exit(1);
}
const server = r.value;
const stop = (): void => void server.close().then(() => process.exit(0));
node.onShutdown = stop;
process.on('SIGTERM', stop);
console.log(`fake daemon listening on ${socketPath}`);
