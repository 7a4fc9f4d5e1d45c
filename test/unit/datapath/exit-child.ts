// Child for datapath.test.ts: leaves native sockets open (reader thread running) and exits three ways.
import { silentLogger } from '../../../src/core/index.js';
import { openNativeDatapath, PacketBatch, ipv4ToU32 } from '../../../src/datapath/index.js';

const mode = process.argv[2];
// `node --test dist/test/` runs every .js under test/: without a mode this is that run, and a no-op.
if (mode === undefined) process.exit(0);
const logger = silentLogger();
const a = await openNativeDatapath({ host: '127.0.0.1', port: 0, logger });
const b = await openNativeDatapath({ host: '127.0.0.1', port: 0, logger });
if (!a.ok || !b.ok) process.exit(3);
let n = 0;
b.value.onReceive((batch) => (n += batch.count));
a.value.onReceive(() => {});
console.log('ready');
if (mode === 'throw') {
  // A throwing handler must reach 'uncaughtException' (not vanish) and receiving must go on.
  let uncaught = 0;
  process.on('uncaughtException', () => uncaught++);
  let batches = 0;
  b.value.onReceive(() => {
    if (++batches === 1) throw new Error('handler bug');
    process.exit(uncaught === 1 ? 0 : 5);
  });
  a.value.send(new Uint8Array(8), '127.0.0.1', b.value.localAddress.port);
  setTimeout(() => a.value.send(new Uint8Array(8), '127.0.0.1', b.value.localAddress.port), 50);
  setTimeout(() => process.exit(4), 5000);
} else if (mode === 'exit') {
  setTimeout(() => process.exit(0), 20);
} else if (mode === 'unref') {
  // Nothing pending but unref'd sockets: the loop must end on its own.
  a.value.unref();
  b.value.unref();
} else {
  const batch = new PacketBatch(64, 64 * 1200);
  for (let i = 0; i < 64; i++) batch.reserve(1200, ipv4ToU32('127.0.0.1'), b.value.localAddress.port);
  const t0 = Date.now();
  const pump = (): void => {
    a.value.sendBatch(batch);
    if (Date.now() - t0 > 150 && n > 0) process.exit(0);
    setImmediate(pump);
  };
  pump();
}
