// The policy language of a network (issue 15): parse + validate (parsePolicy), decide (evaluate). Pure.
export * from './policy.js';
export { jsonPositions, lineColumn } from './json-positions.js';
