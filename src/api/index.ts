// The Docker Engine API (HTTP on node:http). Routers per resource declare the
// backend they need (routers/<resource>/backend.ts); src/cmd/berthd.ts gives
// them the daemon's services. Nothing here imports a store.
export { messageOf, statusOf } from './errors.js';
export { Filters } from './filters.js';
export { FrameDecoder, frame, hijack, MULTIPLEXED_STREAM, RAW_STREAM, StdStream } from './hijack.js';
export { boolValue, boolValueOrDefault, intValue, MAX_JSON_BODY, readBody, readJson, writeJson } from './httputils.js';
export type { ContainerBackend } from './routers/container/backend.js';
export { ContainerRouter } from './routers/container/routes.js';
export { upgradeListener } from './routers/container/upgrade.js';
export type { DistributionBackend, ImageBackend, ImportRequest, PullRequest } from './routers/image/backend.js';
export { ImageRouter, parsePlatform } from './routers/image/routes.js';
export type { AuthBackend, EventLike, SystemBackend } from './routers/system/backend.js';
export { eventMatches, SystemRouter } from './routers/system/routes.js';
export type { VolumeBackend } from './routers/volume/routes.js';
export { VolumeRouter } from './routers/volume/routes.js';
export {
  type ApiContext,
  createApiHandler,
  type Handler,
  type Method,
  type Route,
  type Router,
  type ServerOptions,
} from './server.js';
export { API_VERSION, compareVersions, MIN_API_VERSION, versionAtLeast } from './version.js';
