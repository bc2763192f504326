// Use-case services composing the stores (moby daemon/*): what the API
// routers' backends are made of. src/cmd/berthd.ts wires them.
export { type ContainerUsage, noContainers } from '../image/index.js';
export { applyChanges } from './changes.js';
export { Daemon, type DaemonOptions } from './daemon.js';
export { EVENTS_BUFFER, type EventActor, type EventMessage, EventsService, encodeEvent } from './events.js';
export {
  type FilterArgs,
  type HistoryItem,
  type ImageSummary,
  ImagesService,
  type ImportOptions,
  pathMatchRegExp,
} from './images.js';
export { maskedProxy, type ProxyConfig, proxyConfig } from './proxy.js';
export { API_VERSION, BERTH_VERSION, cgroupVersion, GOARCH, SystemService } from './system.js';
export { parseTimestamp } from './timeutil.js';
