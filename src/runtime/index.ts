// The runtime layer: OCI runtime CLI wrapper, the per-container shim client,
// exec sessions, log settings and json-file log reading. The OCI spec builder
// lives in ./spec (owned separately).
export * from './exec.js';
export * from './log-config.js';
export * from './logs/jsonfile.js';
export * from './logs/local.js';
export * from './oci-runtime.js';
export * from './shim-client.js';
