// The container's hostname, hosts and resolv.conf files (moby
// container_operations_unix.go + libnetwork etchosts/resolvconf), written
// under `containers/<id>/` with mode 0644, and resolv.conf.hash as dockerd does.
import { createHash } from 'node:crypto';
import fs from 'node:fs';

export const DEFAULT_HOSTS = [
  '127.0.0.1\tlocalhost',
  '::1\tlocalhost ip6-localhost ip6-loopback',
  'fe00::0\tip6-localnet',
  'ff00::0\tip6-mcastprefix',
  'ff02::1\tip6-allnodes',
  'ff02::2\tip6-allrouters',
];
export const DEFAULT_IPV4_DNS = ['nameserver 8.8.8.8', 'nameserver 8.8.4.4'];
export const DEFAULT_IPV6_DNS = ['nameserver 2001:4860:4860::8888', 'nameserver 2001:4860:4860::8844'];

export interface DnsSettings {
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
}

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
  /** All other lines, kept (comments included). */
  other: string[];
}

export function parseResolvConf(text: string): ResolvConf {
  const r: ResolvConf = { nameservers: [], search: [], options: [], other: [] };
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'nameserver' && f[1]) r.nameservers.push(f[1]);
    else if ((f[0] === 'search' || f[0] === 'domain') && f.length > 1) r.search = f.slice(1);
    else if (f[0] === 'options' && f.length > 1) r.options.push(...f.slice(1));
    else if (line.trim()) r.other.push(line);
  }
  return r;
}

const isLocalhost = (ns: string) => /^127\./.test(ns) || ns === '::1' || ns === '0:0:0:0:0:0:0:1';

/**
 * Builds the container's resolv.conf from the host's, like dockerd 20.10 for
 * a non-host network: localhost nameservers are dropped (falling back to
 * Google's public servers when none remain); --dns/--dns-search/--dns-opt (or
 * the daemon's dns/dns-search/dns-opts) replace the corresponding host lines.
 */
export function buildResolvConf(hostText: string, s: DnsSettings, ipv6 = false): string {
  const host = parseResolvConf(hostText);
  const hasUser = !!(s.dns?.length || s.dnsSearch?.length || s.dnsOptions?.length);
  if (!hasUser) {
    // filter the host's file, keeping its other lines in place
    const lines: string[] = [];
    let kept = 0;
    for (const line of hostText.split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[0] === 'nameserver' && f[1] && (isLocalhost(f[1]) || (!ipv6 && f[1].includes(':')))) continue;
      if (f[0] === 'nameserver') kept++;
      lines.push(line);
    }
    let text = lines.join('\n');
    if (kept === 0) {
      const def = [...DEFAULT_IPV4_DNS, ...(ipv6 ? DEFAULT_IPV6_DNS : [])];
      text = `${text.replace(/\n*$/, '')}${text.trim() ? '\n' : ''}\n${def.join('\n')}\n`.replace(/^\n+/, '');
    }
    return text;
  }
  const ns = s.dns?.length ? s.dns : host.nameservers.filter((n) => !isLocalhost(n));
  const search = s.dnsSearch?.length ? s.dnsSearch.filter((d) => d !== '.') : host.search;
  const options = s.dnsOptions?.length ? s.dnsOptions : host.options;
  let out = '';
  if (search.length) out += `search ${search.join(' ')}\n`;
  for (const n of ns.length ? ns : ['8.8.8.8', '8.8.4.4']) out += `nameserver ${n}\n`;
  if (options.length) out += `options ${options.join(' ')}\n`;
  return out;
}

export function buildHosts(opts: {
  extraHosts?: string[];
  ip?: string;
  hostname?: string;
  domainname?: string;
}): string {
  const lines = [...DEFAULT_HOSTS];
  for (const e of opts.extraHosts ?? []) {
    // "host:ip" (API form) → "ip\thost"
    const i = e.indexOf(':');
    if (i > 0) lines.push(`${e.slice(i + 1)}\t${e.slice(0, i)}`);
  }
  if (opts.ip && opts.hostname) {
    const fqdn = opts.domainname ? `${opts.hostname}.${opts.domainname} ${opts.hostname}` : opts.hostname;
    lines.push(`${opts.ip}\t${fqdn}`);
  }
  return `${lines.join('\n')}\n`;
}

export interface NetworkFiles {
  hostname: string;
  hosts: string;
  resolvConf: string;
}

/**
 * Writes hostname, hosts, resolv.conf and resolv.conf.hash into `dir`, in place
 * and not fsynced, as moby's plain WriteFile: they are written when the
 * container is created (nobody reads them yet) and derived from its config;
 * in place also keeps the inode a running container has bind-mounted.
 */
export function writeNetworkFiles(dir: string, f: NetworkFiles): void {
  const o = { mode: 0o644 };
  fs.writeFileSync(`${dir}/hostname`, f.hostname, o);
  fs.writeFileSync(`${dir}/hosts`, f.hosts, o);
  fs.writeFileSync(`${dir}/resolv.conf`, f.resolvConf, o);
  fs.writeFileSync(`${dir}/resolv.conf.hash`, `sha256:${createHash('sha256').update(f.resolvConf).digest('hex')}`, o);
}

export function readHostFile(p: string, fallback = ''): string {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return fallback;
  }
}
