// Daemon control socket: protocol, server (daemon side), client (pilotctl / SDK side).
export * from './protocol.js';
export { serveIpc, type IpcServer, type IpcServerOptions, type PingOptions } from './server.js';
export { connectIpc, connectSocket, callOnce, IpcConnection, type DaemonTarget, type EventHandler } from './client.js';
export * from './paths.js';
