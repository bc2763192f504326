// Which endpoints serve a registry host, and how to talk to them: dockerd's
// rules (registry/config.go, registry/service_v2.go) plus per-registry mirrors.
//
//   docker.io            → each `registry-mirrors` URL, then https://registry-1.docker.io
//   any other host       → each mirror configured for that host (berth extension,
//                          moby#18818), then https://host, then http://host when
//                          the host is insecure
//   insecure hosts       → listed in insecure-registries by host[:port], or whose
//                          IP is in one of its CIDRs; 127.0.0.0/8 and ::1 always.
//                          TLS is not verified and plain HTTP is tried after HTTPS.
//
// Mirrors are tried first; any failure on a mirror falls back to the next
// endpoint and finally the origin.
import dns from 'node:dns/promises';
import net from 'node:net';
import { DEFAULT_DOMAIN } from '../../oci/index.js';

export const DOCKER_HUB_ENDPOINT = 'https://registry-1.docker.io';
/** What the Engine API's POST /auth gets for Docker Hub. */
export const DOCKER_HUB_INDEX = 'https://index.docker.io/v1/';

export interface RegistryHostsConfig {
  /** daemon.json `insecure-registries`: host[:port] or CIDR. */
  insecureRegistries?: readonly string[];
  /** daemon.json `registry-mirrors`: mirrors of Docker Hub (URLs). */
  registryMirrors?: readonly string[];
  /**
   * berth extension (daemon.json key `berth-registry-mirrors`, src/config):
   * mirrors for any registry, `{"registry.example:5000": ["http://mirror:5000"]}`.
   * A `docker.io` key adds to registryMirrors.
   */
  mirrors?: Readonly<Record<string, readonly string[]>>;
}

export interface Endpoint {
  /** Origin plus optional path prefix, no trailing slash: `https://host:5000`. */
  base: string;
  /** Verify the server's certificate (false for insecure registries). */
  tlsVerify: boolean;
  /** A mirror: any failure falls back to the next endpoint. */
  mirror: boolean;
}

interface Cidr {
  family: 4 | 6;
  bits: bigint;
  mask: bigint;
}

function ipToBigInt(ip: string): { family: 4 | 6; v: bigint } | undefined {
  if (net.isIPv4(ip)) {
    return { family: 4, v: ip.split('.').reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n) };
  }
  if (net.isIPv6(ip)) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    if (mapped) return ipToBigInt(mapped[1]!);
    const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const fill = tail === undefined ? [] : new Array(8 - h.length - t.length).fill('0');
    const groups = [...h, ...fill, ...t];
    if (groups.length !== 8) return undefined;
    return { family: 6, v: groups.reduce((a, g) => (a << 16n) | BigInt(Number.parseInt(g || '0', 16)), 0n) };
  }
  return undefined;
}

function parseCidr(s: string): Cidr | undefined {
  const i = s.indexOf('/');
  if (i < 0) return undefined;
  const ip = ipToBigInt(s.slice(0, i));
  const len = Number(s.slice(i + 1));
  if (!ip || !Number.isInteger(len)) return undefined;
  const width = ip.family === 4 ? 32 : 128;
  if (len < 0 || len > width) return undefined;
  const mask = len === 0 ? 0n : ((1n << BigInt(len)) - 1n) << BigInt(width - len);
  return { family: ip.family, bits: ip.v & mask, mask };
}

const DEFAULT_INSECURE_CIDRS = ['127.0.0.0/8', '::1/128'];

/** Host part of `host[:port]` (brackets removed for IPv6). */
export function hostOnly(hostPort: string): string {
  if (hostPort.startsWith('[')) return hostPort.slice(1, hostPort.indexOf(']'));
  const i = hostPort.lastIndexOf(':');
  return i > 0 && !hostPort.slice(0, i).includes(':') ? hostPort.slice(0, i) : hostPort;
}

function normaliseMirror(u: string): string {
  const url = new URL(u.includes('://') ? u : `https://${u}`);
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

export class RegistryHosts {
  private names = new Set<string>();
  private cidrs: Cidr[] = [];
  private hubMirrors: string[] = [];
  private mirrors = new Map<string, string[]>();

  constructor(cfg: RegistryHostsConfig = {}) {
    this.configure(cfg);
  }

  /** Applies a new configuration (SIGHUP reload of insecure-registries / registry-mirrors). */
  configure(cfg: RegistryHostsConfig): void {
    const names = new Set<string>();
    const cidrs: Cidr[] = [];
    for (const c of DEFAULT_INSECURE_CIDRS) cidrs.push(parseCidr(c)!);
    for (const entry of cfg.insecureRegistries ?? []) {
      const e = entry.replace(/^https?:\/\//, '').replace(/\/+$/, '');
      const c = parseCidr(e);
      if (c) cidrs.push(c);
      else names.add(e.toLowerCase());
    }
    const mirrors = new Map<string, string[]>();
    for (const [host, list] of Object.entries(cfg.mirrors ?? {})) {
      const h = host === 'index.docker.io' || host === 'registry-1.docker.io' ? DEFAULT_DOMAIN : host.toLowerCase();
      mirrors.set(h, [...(mirrors.get(h) ?? []), ...list.map(normaliseMirror)]);
    }
    this.names = names;
    this.cidrs = cidrs;
    this.hubMirrors = (cfg.registryMirrors ?? []).map(normaliseMirror);
    this.mirrors = mirrors;
  }

  private ipInsecure(ip: string): boolean {
    const v = ipToBigInt(ip);
    if (!v) return false;
    return this.cidrs.some((c) => c.family === v.family && (v.v & c.mask) === c.bits);
  }

  /** dockerd's isSecureIndex, inverted: by name (host or host:port), then by resolved IP against the CIDRs. */
  async isInsecure(hostPort: string): Promise<boolean> {
    const hp = hostPort.toLowerCase();
    if (this.names.has(hp)) return true;
    const host = hostOnly(hp);
    if (this.names.has(host)) return true;
    if (net.isIP(host)) return this.ipInsecure(host);
    if (host === 'localhost') return true;
    try {
      const addrs = await dns.lookup(host, { all: true });
      return addrs.some((a) => this.ipInsecure(a.address));
    } catch {
      return false;
    }
  }

  /** Mirror URLs configured for a registry domain. */
  mirrorsFor(domain: string): string[] {
    const extra = this.mirrors.get(domain) ?? [];
    return domain === DEFAULT_DOMAIN ? [...this.hubMirrors, ...extra] : [...extra];
  }

  /** The endpoints to try for a registry domain, in order (pull: mirrors first; push: never mirrors). */
  async endpoints(domain: string, opts: { mirrors?: boolean } = {}): Promise<Endpoint[]> {
    const out: Endpoint[] = [];
    if (opts.mirrors !== false) {
      for (const m of this.mirrorsFor(domain)) {
        const u = new URL(m);
        out.push({ base: m, tlsVerify: !(await this.isInsecure(u.host)), mirror: true });
      }
    }
    if (domain === DEFAULT_DOMAIN) {
      out.push({ base: DOCKER_HUB_ENDPOINT, tlsVerify: true, mirror: false });
      return out;
    }
    const insecure = await this.isInsecure(domain);
    out.push({ base: `https://${domain}`, tlsVerify: !insecure, mirror: false });
    if (insecure) out.push({ base: `http://${domain}`, tlsVerify: false, mirror: false });
    return out;
  }
}
