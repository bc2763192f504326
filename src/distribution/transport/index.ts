// The registry v2 client: transport, auth, endpoints. No engine dependencies
// (only src/oci and src/errors), so berth's registry can use it for its
// pull-through proxy.
export * from './auth.js';
export * from './challenge.js';
export * from './client.js';
export * from './errors.js';
export * from './hosts.js';
