// The Engine API's pull, push and login (POST /images/create?fromImage=,
// POST /images/{name}/push, POST /auth) over the distribution module, with the
// image events dockerd emits for them.
import type { DistributionBackend, PullRequest } from '../api/routers/image/backend.js';
import type { AuthBackend } from '../api/routers/system/backend.js';
import {
  type DistributionService,
  distributionConfigFrom,
  fromJsonMessageSink,
  normalizeAuthConfig,
} from '../distribution/index.js';
import { familiarString, parseDockerRef } from '../oci/index.js';
import type { ProgressSink } from '../progress/index.js';
import type { EventsService } from './events.js';

export class RegistryService implements DistributionBackend, AuthBackend {
  constructor(
    private readonly dist: DistributionService,
    private readonly events: EventsService,
  ) {}

  async pull(req: PullRequest, sink: ProgressSink): Promise<void> {
    // the CLI sends fromImage=name and tag=<tag or digest>
    const ref = parseDockerRef(
      req.tag ? (req.tag.includes(':') ? `${req.image}@${req.tag}` : `${req.image}:${req.tag}`) : req.image,
    );
    await this.dist.pull(ref, {
      auth: normalizeAuthConfig(req.auth),
      progress: fromJsonMessageSink(sink),
      signal: req.signal,
      ...(req.platform?.architecture
        ? {
            platform: {
              os: req.platform.os,
              architecture: req.platform.architecture,
              ...(req.platform.variant ? { variant: req.platform.variant } : {}),
            },
          }
        : {}),
    });
    const name = familiarString(ref);
    this.events.log('image', 'pull', { ID: name, Attributes: { name } });
  }

  async push(
    req: { name: string; tag: string; auth?: Record<string, unknown>; signal: AbortSignal },
    sink: ProgressSink,
  ): Promise<void> {
    const results = await this.dist.push(req.tag ? `${req.name}:${req.tag}` : req.name, {
      auth: normalizeAuthConfig(req.auth),
      progress: fromJsonMessageSink(sink),
      signal: req.signal,
    });
    for (const r of results) {
      const name = `${req.name}:${r.tag}`;
      this.events.log('image', 'push', { ID: name, Attributes: { name } });
    }
  }

  distributionInspect(name: string, auth?: Record<string, unknown>): Promise<unknown> {
    return this.dist.inspect(parseDockerRef(name), { auth: normalizeAuthConfig(auth) });
  }

  auth(config: Record<string, unknown>): Promise<{ Status: string; IdentityToken?: string }> {
    return this.dist.login(normalizeAuthConfig(config));
  }

  /** SIGHUP: concurrency limits, attempts, mirrors, insecure registries. */
  reload(cfg: Parameters<typeof distributionConfigFrom>[0]): void {
    this.dist.configure(distributionConfigFrom(cfg));
  }

  close(): Promise<void> {
    return this.dist.close();
  }
}
