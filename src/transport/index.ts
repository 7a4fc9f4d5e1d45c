// Public surface of the sans-IO transport (see connection.ts for the driver contract).
export { Connection } from './connection.js';
export type { ConnEvent, ConnState, ConnectConfig, ConnectionOptions, ConnectionStats } from './connection.js';
export type { AckSample, CongestionController, CongestionControllerFactory, CongestionInit } from './congestion/controller.js';
export { Bbr, bbrFactory } from './congestion/bbr.js';
export { NewReno, newRenoFactory } from './congestion/new-reno.js';
