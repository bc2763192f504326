// Thrown by ProxyCache.fetchBlob when the blob became local while the response had not
// started: the server serves it from storage. Its own module so that the server can test
// for it without loading the proxy (and undici) when no pull-through cache is configured.
export class CachedNow extends Error {
  constructor() {
    super('cached; serve from storage');
  }
}
