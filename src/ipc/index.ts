// Daemon control socket: protocol, server (daemon side), client (pilotctl / SDK side).
export * from './protocol.js';
export { serveIpc, type IpcServer, type IpcServerOptions, type PingOptions } from './server.js';
export { connectIpc, connectSocket, callOnce, openRawStream, IpcConnection, type DaemonTarget, type EventHandler, type StreamOpenResult } from './client.js';
export { IpcStream } from './stream.js';
export * from './paths.js';
