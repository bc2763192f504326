// Prometheus metrics (prom-client, one Registry per server so tests can run
// several): HTTP requests by method/route/status and their latency, bytes
// served, completed uploads, storage driver action latency (a decorator over
// the driver, like distribution's base driver), proxy cache hits/misses, and
// the process's default metrics. Served on `http.debug.addr` at `/metrics`.
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import type { FileInfo, FileWriter, StorageDriver, WalkResult } from './storage/driver.js';

export class RegistryMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'registry_http_requests_total',
    help: 'HTTP requests by method, route and status code',
    labelNames: ['method', 'route', 'code'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'registry_http_request_duration_seconds',
    help: 'HTTP request latency by method and route',
    labelNames: ['method', 'route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly bytesSent = new Counter({
    name: 'registry_http_response_bytes_total',
    help: 'Response body bytes by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly uploads = new Counter({
    name: 'registry_uploads_total',
    help: 'Blob uploads by result (completed, failed, mounted)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly storageLatency = new Histogram({
    name: 'registry_storage_action_seconds',
    help: 'Storage driver action latency by driver and action',
    labelNames: ['driver', 'action'] as const,
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly proxy = new Counter({
    name: 'registry_proxy_requests_total',
    help: 'Pull-through cache lookups by kind (blob, manifest) and result (hit, miss, stale)',
    labelNames: ['kind', 'result'] as const,
    registers: [this.registry],
  });
  readonly proxyBytes = new Counter({
    name: 'registry_proxy_pulled_bytes_total',
    help: 'Bytes fetched from the upstream registry',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }

  /** Wraps a driver so every action's latency is observed. */
  instrument(driver: StorageDriver): StorageDriver {
    const h = this.storageLatency;
    const name = driver.name;
    const timed = <T>(action: string, p: () => Promise<T>): Promise<T> => {
      const end = h.startTimer({ driver: name, action });
      return p().finally(() => end());
    };
    return {
      name,
      getContent: (p: string) => timed('GetContent', () => driver.getContent(p)),
      putContent: (p: string, c: Buffer | string, o?: { sync?: boolean }) =>
        timed('PutContent', () => driver.putContent(p, c, o)),
      reader: (p: string, o?: number, l?: number) => timed('Reader', () => driver.reader(p, o, l)),
      writer: (p: string, a: boolean): Promise<FileWriter> => timed('Writer', () => driver.writer(p, a)),
      stat: (p: string): Promise<FileInfo> => timed('Stat', () => driver.stat(p)),
      list: (p: string) => timed('List', () => driver.list(p)),
      move: (s: string, d: string) => timed('Move', () => driver.move(s, d)),
      delete: (p: string) => timed('Delete', () => driver.delete(p)),
      walk: (p: string, fn: (fi: FileInfo) => Promise<WalkResult> | WalkResult) =>
        timed('Walk', () => driver.walk(p, fn)),
      // Cache validation (one stat) is not a driver action worth a histogram sample.
      ...(driver.versioned ? { versioned: driver.versioned } : {}),
    };
  }
}
