// Built-in services on virtual ports (echo 7, data exchange 1001, event stream 1002) and the clients the
// daemon's NodeApi uses (ping, bench, send-message, send-file, publish, subscribe), plus the port-1000
// style one-shot helpers. Written against ServiceHost/PilotStream from node/api.ts only.
export * from './runtime.js';
export * from './echo.js';
export * from './data-exchange.js';
export * from './data-exchange-codec.js';
export * from './event-stream.js';
export * from './event-stream-codec.js';
export * from './inbox.js';
export * from './received-files.js';
export * from './stdio.js';
export { StreamReader, writeChunk, closeStream, endStream, withTimeout } from './stream-io.js';
export * from './quota.js';
export * from './file-transfer.js';
export * from './file-transfer-codec.js';
export * from './file-transfer-machine.js';
export * from './file-transfer-store.js';
