#!/usr/bin/env node
// berthd: the daemon. Composition root: configuration → logger → pidfile →
// stores → API routers → listeners; SIGHUP reloads, SIGTERM/SIGINT shut down.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import path from 'node:path';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import {
  ContainerRouter,
  createApiHandler,
  ImageRouter,
  SystemRouter,
  upgradeListener,
  VolumeRouter,
} from '../api/index.js';
import {
  assertSupported,
  type DaemonConfig,
  type DaemonHost,
  DEFAULT_CONFIG_FILE,
  DEFAULTS,
  effectiveLogLevel,
  loadDaemonConfigDetailed,
  type ParsedFlags,
  parseDaemonHost,
  readConfigFile,
  reloadDaemonConfig,
  type Source,
  unsupportedSettings,
  usage,
} from '../config/index.js';
import { containerBackend } from '../daemon/containers-api.js';
import { BERTH_VERSION, Daemon, encodeEvent, maskedProxy, parseTimestamp, proxyConfig } from '../daemon/index.js';
import { RegistryService } from '../daemon/registry.js';
import { DistributionService, distributionConfigFrom } from '../distribution/index.js';
import { BerthError } from '../errors/index.js';
import { acquirePidfile } from '../fsutil/index.js';
import { Logger, type LogLevel } from '../log/index.js';

/** daemon.json keys berthd implements: any value is honoured. */
export const SUPPORTED_KEYS = [
  'debug',
  'log-level',
  'log-format', // only "text" (checked below)
  'raw-logs',
  'hosts',
  'group',
  'pidfile',
  'data-root',
  'exec-root',
  'tls',
  'tlsverify',
  'tlscacert',
  'tlscert',
  'tlskey',
  'api-cors-header',
  'metrics-addr',
  'experimental',
  'labels',
  'shutdown-timeout',
  'live-restore',
  'oom-score-adjust',
  'storage-driver', // only overlay2 (checked below)
  'max-concurrent-downloads',
  'max-concurrent-uploads',
  'max-download-attempts',
  'registry-mirrors',
  'insecure-registries',
  'berth-registry-mirrors', // berth extension: mirrors for any registry
  'http-proxy',
  'https-proxy',
  'no-proxy',
  'runtimes',
  'default-runtime',
  'exec-opts',
  'log-driver',
  'log-opts',
  'default-ulimits',
  'cgroup-parent',
  'default-shm-size',
  'default-ipc-mode',
  'default-cgroupns-mode',
  'init',
  'init-path',
  'no-new-privileges',
  'seccomp-profile',
  'dns',
  'dns-opts',
  'dns-search',
];

/** since/until of logs: unix seconds keep their nanoseconds; other forms go through parseTimestamp. */
function timeToNs(v: string): bigint {
  const m = /^(\d+)(?:\.(\d{1,9}))?$/.exec(v.trim());
  if (m) return BigInt(m[1]!) * 1_000_000_000n + BigInt((m[2] ?? '').padEnd(9, '0') || '0');
  return BigInt(Math.round(parseTimestamp(v) * 1e9));
}

/**
 * Networking settings berthd accepts only at the value that turns the feature
 * off (berth has no networking yet, so "off" is the truth): anything else is refused.
 */
const OFF_VALUES: Record<string, (c: DaemonConfig) => boolean> = {
  bridge: (c) => c.bridge === 'none',
  iptables: (c) => !c.iptables,
  ip6tables: (c) => !c.ip6tables,
  'ip-masq': (c) => !c.ipMasq,
  'ip-forward': (c) => !c.ipForward,
  icc: (c) => !c.icc,
  'userland-proxy': (c) => !c.userlandProxy,
};

function checkSupported(cfg: DaemonConfig): void {
  const off = Object.keys(OFF_VALUES).filter((k) => OFF_VALUES[k]!(cfg));
  assertSupported(cfg, [...SUPPORTED_KEYS, ...off]);
  if (cfg.logFormat !== 'text') {
    throw new BerthError('not-implemented', `berthd does not support log-format "${cfg.logFormat}" yet (only "text")`);
  }
  if (cfg.storageDriver !== 'overlay2' && cfg.storageDriver !== '') {
    throw new BerthError(
      'not-implemented',
      `berthd does not support storage-driver "${cfg.storageDriver}" yet (only "overlay2")`,
    );
  }
}

function toLevel(l: string): LogLevel {
  if (l === 'trace' || l === 'debug') return 'debug';
  if (l === 'warn' || l === 'warning') return 'warn';
  if (l === 'error') return 'error';
  if (l === 'fatal' || l === 'panic') return 'fatal';
  return 'info';
}

function lookupGid(group: string): number | undefined {
  if (/^\d+$/.test(group)) return Number(group);
  try {
    for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
      const [name, , gid] = line.split(':');
      if (name === group && gid) return Number(gid);
    }
  } catch {
    // no /etc/group
  }
  return undefined;
}

/** systemd socket activation: fds passed to us (LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES). */
function activationFds(): { fd: number; name: string }[] {
  if (process.env.LISTEN_PID !== String(process.pid)) return [];
  const n = Number(process.env.LISTEN_FDS ?? '0');
  const names = (process.env.LISTEN_FDNAMES ?? '').split(':');
  const out: { fd: number; name: string }[] = [];
  for (let i = 0; i < n; i++) out.push({ fd: 3 + i, name: names[i] ?? '' });
  return out;
}

interface Listener {
  url: string;
  server: http.Server;
  socketPath?: string;
}

async function listen(server: http.Server, opts: net.ListenOptions): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function main(argv: string[]): Promise<number> {
  let loaded: ReturnType<typeof loadDaemonConfigDetailed>;
  try {
    loaded = loadDaemonConfigDetailed({ argv });
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return e instanceof BerthError && e.message.startsWith('unknown flag') ? 125 : 1;
  }
  const flags: ParsedFlags = loaded.flags;
  if (flags.help) {
    process.stdout.write(usage());
    return 0;
  }
  if (flags.version) {
    process.stdout.write(`berthd version ${BERTH_VERSION} (Docker Engine API 1.41)\n`);
    return 0;
  }
  if (flags.validate) {
    try {
      checkSupported(loaded.config);
    } catch (e) {
      process.stderr.write(`${(e as Error).message}\n`);
      return 1;
    }
    process.stdout.write('configuration OK\n');
    return 0;
  }
  let live: DaemonConfig = loaded.config;
  const sources: Record<string, Source> = loaded.sources;
  const log = new Logger(toLevel(effectiveLogLevel(live)));
  for (const w of [...flags.warnings, ...loaded.warnings]) log.warn(w);
  try {
    checkSupported(live);
  } catch (e) {
    log.error(`failed to start daemon: ${(e as Error).message}`);
    return 1;
  }
  const configFile = flags.configFile ?? DEFAULT_CONFIG_FILE;
  const explicitConfig = flags.configFile !== undefined;

  // hosts: resolve before taking any resource
  const tlsOn = live.tls;
  let hosts: DaemonHost[];
  try {
    hosts = (live.hosts.length ? live.hosts : DEFAULTS.hosts).map((h) => parseDaemonHost(h, tlsOn));
  } catch (e) {
    log.error(`failed to start daemon: ${(e as Error).message}`);
    return 1;
  }
  const startWarnings: string[] = [];
  for (const h of hosts) {
    if (h.proto !== 'tcp' || tlsOn) continue;
    if (sources.tls === 'default') {
      log.error(
        `failed to start daemon: listening on ${h.url} without TLS gives root access on this machine to anyone who can reach it; ` +
          'use --tlsverify with --tlscacert/--tlscert/--tlskey, or set --tls=false explicitly to accept the risk',
      );
      return 1;
    }
    const w = `API is accessible on http://${h.address} without encryption.\n         Access to the remote API is equivalent to root access on the host. Refer\n         to the 'Docker daemon attack surface' section in the documentation for\n         more information: https://docs.docker.com/go/attack-surface/`;
    log.warn(
      `Binding to IP address without --tlsverify is insecure and gives root access on this machine to everyone who has access to your network.`,
      { host: h.url },
    );
    log.warn("[!] DON'T BIND ON ANY IP ADDRESS WITHOUT setting --tlsverify IF YOU DON'T KNOW WHAT YOU'RE DOING [!]");
    startWarnings.push(`WARNING: ${w}`);
  }

  log.info('Starting up', { version: BERTH_VERSION });
  const px = maskedProxy(proxyConfig(live));
  if (px.httpProxy || px.httpsProxy || px.noProxy) {
    log.info('Using proxy configuration for registry traffic', {
      'http-proxy': px.httpProxy,
      'https-proxy': px.httpsProxy,
      'no-proxy': px.noProxy,
    });
  }
  if (live.oomScoreAdjust !== 0) {
    try {
      fs.writeFileSync('/proc/self/oom_score_adj', String(live.oomScoreAdjust));
    } catch (e) {
      log.warn(`failed to set oom_score_adj: ${(e as Error).message}`);
    }
  }

  let releasePid: () => void;
  try {
    fs.mkdirSync(path.dirname(live.pidfile), { recursive: true });
    releasePid = acquirePidfile(live.pidfile);
  } catch (e) {
    log.error(`failed to start daemon: ${(e as Error).message}`);
    return 1;
  }

  let daemon: Daemon;
  try {
    daemon = await Daemon.open({ config: () => live, logger: log, warnings: () => startWarnings });
  } catch (e) {
    log.error(`failed to start daemon: ${(e as Error).message}`);
    releasePid();
    return 1;
  }

  // metrics
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const reqs = new Counter({
    name: 'engine_daemon_api_requests_total',
    help: 'Engine API requests by method, route and status',
    labelNames: ['method', 'route', 'code'],
    registers: [registry],
  });
  const lat = new Histogram({
    name: 'engine_daemon_api_request_duration_seconds',
    help: 'Engine API request latency',
    labelNames: ['method', 'route'],
    registers: [registry],
  });
  new Gauge({
    name: 'engine_daemon_engine_info',
    help: 'The information related to the engine and the OS it is running on',
    labelNames: ['version', 'graphdriver', 'kernel', 'os', 'daemon_id'],
    registers: [registry],
  })
    .labels(BERTH_VERSION, daemon.layers.driver.name, (await import('node:os')).release(), 'linux', '')
    .set(1);
  new Gauge({
    name: 'engine_daemon_images',
    help: 'Number of images in the image store',
    registers: [registry],
    collect() {
      this.set(daemon.imageStore.length);
    },
  });

  const registryService = new RegistryService(
    new DistributionService({
      layers: daemon.layers,
      images: daemon.imageStore,
      refs: daemon.refs,
      metadata: daemon.distribution,
      ...distributionConfigFrom(live),
    }),
    daemon.events,
  );

  const handler = createApiHandler({
    routers: [
      new SystemRouter(
        {
          info: () => daemon.system.info(),
          version: () => daemon.system.version(),
          diskUsage: (t) => daemon.system.diskUsage(t),
          subscribe: (fn) => daemon.events.subscribe(fn),
          experimental: () => live.experimental,
          encodeEvent: (e) => encodeEvent(e),
        },
        { parseTime: (v) => parseTimestamp(v), auth: registryService },
      ),
      new ImageRouter(daemon.images, registryService),
      new ContainerRouter(
        containerBackend(daemon.containers, daemon.containerIO, daemon.containerViews, daemon.containerFs, (v) =>
          parseTimestamp(v),
        ),
        timeToNs,
      ),
      new VolumeRouter(daemon.volumes),
    ],
    logger: log,
    serverVersion: BERTH_VERSION,
    corsHeader: live.apiCorsHeader,
    observe: (method, route, code, secs) => {
      reqs.labels(method, route, String(code)).inc();
      lat.labels(method, route).observe(secs);
    },
  });

  const listeners: Listener[] = [];
  const onUpgrade = upgradeListener(handler);
  const makeServer = (): http.Server => {
    const s = makeServer0();
    s.on('upgrade', onUpgrade);
    return s;
  };
  const makeServer0 = (): http.Server => {
    if (!tlsOn) return http.createServer(handler);
    const read = (f: string) => fs.readFileSync(f);
    return https.createServer(
      {
        cert: read(live.tlscert),
        key: read(live.tlskey),
        ...(live.tlsverify ? { ca: read(live.tlscacert), requestCert: true, rejectUnauthorized: true } : {}),
        minVersion: 'TLSv1.2',
      },
      handler,
    ) as unknown as http.Server;
  };
  const fds = activationFds();
  try {
    for (const h of hosts) {
      if (h.proto === 'unix') {
        const server = makeServer();
        fs.mkdirSync(path.dirname(h.address), { recursive: true });
        try {
          fs.unlinkSync(h.address);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
        const old = process.umask(0o777);
        try {
          await listen(server, { path: h.address });
        } finally {
          process.umask(old);
        }
        let gid = lookupGid(live.group);
        if (gid === undefined) {
          if (live.group !== '' && live.group !== 'docker') {
            throw new BerthError('invalid-argument', `group ${live.group} not found`);
          }
          if (live.group !== '')
            log.warn(`could not change group ${h.address} to ${live.group}: group ${live.group} not found`);
          gid = process.getgid?.() ?? 0;
        }
        fs.chownSync(h.address, 0, gid);
        fs.chmodSync(h.address, 0o660);
        listeners.push({ url: h.url, server, socketPath: h.address });
      } else if (h.proto === 'tcp') {
        const server = makeServer();
        const m = /^\[?(.*?)\]?:(\d+)$/.exec(h.address)!;
        await listen(server, { host: m[1] === 'localhost' ? '127.0.0.1' : m[1], port: Number(m[2]) });
        listeners.push({ url: h.url, server });
      } else {
        if (fds.length === 0)
          throw new BerthError(
            'invalid-argument',
            'no sockets found via socket activation: make sure the service was started by systemd',
          );
        const pick =
          h.address === '' || h.address === '*'
            ? fds
            : fds.filter((f) => String(f.fd) === h.address || f.name === h.address);
        if (pick.length === 0)
          throw new BerthError('invalid-argument', `too few socket activated files passed in by systemd: ${h.url}`);
        for (const f of pick) {
          const server = makeServer();
          await listen(server, { fd: f.fd } as net.ListenOptions);
          listeners.push({ url: `fd://${f.fd}`, server });
        }
      }
      log.info(`API listen on ${h.proto === 'unix' ? h.address : h.proto === 'tcp' ? `[${h.address}]` : h.url}`);
    }
  } catch (e) {
    log.error(`failed to start daemon: failed to load listeners: ${(e as Error).message}`);
    for (const l of listeners) l.server.close();
    for (const l of listeners) if (l.socketPath) fs.rmSync(l.socketPath, { force: true });
    await daemon.close();
    releasePid();
    return 1;
  }

  let metricsServer: http.Server | undefined;
  if (live.metricsAddr) {
    metricsServer = http.createServer(async (req, res) => {
      if (req.url?.split('?')[0] !== '/metrics') {
        res.writeHead(404).end('404 page not found\n');
        return;
      }
      res.writeHead(200, { 'Content-Type': registry.contentType });
      res.end(await registry.metrics());
    });
    const i = live.metricsAddr.lastIndexOf(':');
    try {
      await listen(metricsServer, {
        host: live.metricsAddr.slice(0, i) || '0.0.0.0',
        port: Number(live.metricsAddr.slice(i + 1)),
      });
      log.info(`metrics API listening on ${live.metricsAddr}`);
    } catch (e) {
      log.error(`failed to listen for metrics on ${live.metricsAddr}: ${(e as Error).message}`);
    }
  }

  try {
    await daemon.restore();
  } catch (e) {
    log.error(`restoring containers failed: ${(e as Error).message}`);
  }

  // SIGHUP: reload
  process.on('SIGHUP', () => {
    try {
      const text = readConfigFile(configFile, explicitConfig);
      const r = reloadDaemonConfig(live, flags, text, { configFile });
      for (const w of r.warnings) log.warn(w);
      live = r.next;
      log.setLevel(toLevel(effectiveLogLevel(live)));
      registryService.reload(live);
      const bad = unsupportedSettings(live, [...SUPPORTED_KEYS, ...Object.keys(OFF_VALUES)]);
      if (bad.length) log.warn(`settings not supported yet (ignored): ${bad.join(', ')}`);
      const attrs: Record<string, string> = {};
      for (const k of r.changed) attrs[k] = JSON.stringify((live as unknown as Record<string, unknown>)[camel(k)]);
      log.info(
        r.changed.length
          ? `Reloaded configuration: ${r.changed.map((k) => `${k}=${attrs[k]}`).join(' ')}`
          : 'Reloaded configuration: no change',
      );
      if (r.needRestart.length)
        log.warn(`these settings changed but need a daemon restart to take effect: ${r.needRestart.join(', ')}`);
      daemon.events.log('daemon', 'reload', { ID: daemon.system.info().ID as string, Attributes: attrs });
    } catch (e) {
      log.error(`Error reconfiguring the daemon: ${(e as Error).message}`);
    }
  });

  // SIGTERM/SIGINT: graceful shutdown
  return await new Promise<number>((resolve) => {
    setImmediate(() => log.info('Daemon has completed initialization'));
    let stopping = false;
    const shutdown = async (sig: string) => {
      if (stopping) {
        log.warn(`${sig} received again: exiting now`);
        process.exit(1);
      }
      stopping = true;
      log.info(`Processing signal '${sig}'`);
      const timeout = live.shutdownTimeout >= 0 ? live.shutdownTimeout * 1000 : 0;
      const closing = Promise.all(
        listeners.map(
          (l) =>
            new Promise<void>((r) => {
              l.server.close(() => r());
              l.server.closeIdleConnections();
            }),
        ),
      );
      const timer = new Promise<void>((r) => setTimeout(r, timeout).unref());
      await Promise.race([closing, timer]);
      for (const l of listeners) l.server.closeAllConnections();
      metricsServer?.close();
      metricsServer?.closeAllConnections();
      for (const l of listeners) if (l.socketPath) fs.rmSync(l.socketPath, { force: true });
      try {
        await registryService.close();
        await daemon.close();
      } catch (e) {
        log.error(`error closing stores: ${(e as Error).message}`);
      }
      releasePid();
      log.info('Daemon shutdown complete');
      resolve(0);
    };
    process.on('SIGTERM', () => void shutdown('terminated'));
    process.on('SIGINT', () => void shutdown('interrupt'));
  });
}

function camel(k: string): string {
  return k.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    setImmediate(() => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`berthd: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
