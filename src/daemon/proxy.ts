// Proxy settings for registry traffic: daemon.json / flags first (http-proxy,
// https-proxy, no-proxy), then the environment, as dockerd does.
import { type DaemonConfig, maskCredentials } from '../config/index.js';

export interface ProxyConfig {
  httpProxy: string;
  httpsProxy: string;
  noProxy: string;
}

export function proxyConfig(cfg: DaemonConfig, env: NodeJS.ProcessEnv = process.env): ProxyConfig {
  return {
    httpProxy: cfg.httpProxy || env.HTTP_PROXY || env.http_proxy || '',
    httpsProxy: cfg.httpsProxy || env.HTTPS_PROXY || env.https_proxy || '',
    noProxy: cfg.noProxy || env.NO_PROXY || env.no_proxy || '',
  };
}

/** The proxy settings with credentials masked, for logs and /info. */
export function maskedProxy(p: ProxyConfig): ProxyConfig {
  return { httpProxy: maskCredentials(p.httpProxy), httpsProxy: maskCredentials(p.httpsProxy), noProxy: p.noProxy };
}
