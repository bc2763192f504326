// htpasswd Basic auth (distribution's auth.htpasswd): bcrypt entries only.
// `docker login` pings /v2/, receives `WWW-Authenticate: Basic realm=…` and
// retries with credentials. With `anonymousread` (berth) GET/HEAD on
// repositories and the catalog need no credentials; /v2/ still challenges so
// clients learn the scheme before they push.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import bcrypt from 'bcryptjs';
import { invalidArgument } from '../../errors/index.js';
import type { Access, AccessController, AuthContext } from './access.js';
import { unauthorized } from './access.js';

export function parseHtpasswd(text: string, file: string): Map<string, string> {
  const users = new Map<string, string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const c = line.indexOf(':');
    if (c <= 0) throw invalidArgument(`${file}:${i + 1}: expected user:hash`);
    const hash = line.slice(c + 1);
    if (!/^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash))
      throw invalidArgument(`${file}:${i + 1}: only bcrypt entries are supported (htpasswd -B)`);
    users.set(line.slice(0, c), hash);
  });
  return users;
}

const CACHE_MAX = 1024;

export class HtpasswdController implements AccessController {
  private users: Map<string, string>;
  /** Verified credentials (sha256 of user, password and hash): bcrypt is deliberately slow. */
  private readonly ok = new Set<string>();
  private readonly challenge: string;

  constructor(
    readonly realm: string,
    readonly file: string,
    private readonly anonymousRead = false,
  ) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw invalidArgument(`auth.htpasswd.path: cannot read ${file}: ${(e as Error).message}`);
    }
    this.users = parseHtpasswd(text, file);
    this.challenge = `Basic realm=${JSON.stringify(realm)}`;
  }

  async authorize(req: http.IncomingMessage, access: Access[]): Promise<AuthContext> {
    const h = req.headers.authorization;
    if (!h || !/^basic /i.test(h)) {
      if (this.anonymousRead && access.length > 0 && access.every((a) => a.action === 'pull' || a.type === 'registry'))
        return {};
      throw unauthorized(this.challenge);
    }
    const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
    const c = decoded.indexOf(':');
    const user = c === -1 ? decoded : decoded.slice(0, c);
    const pass = c === -1 ? '' : decoded.slice(c + 1);
    const hash = this.users.get(user);
    if (hash === undefined) throw unauthorized(this.challenge, undefined, 'authentication required');
    const key = createHash('sha256').update(`${user}\0${pass}\0${hash}`).digest('hex');
    if (!this.ok.has(key)) {
      if (!(await bcrypt.compare(pass, hash))) throw unauthorized(this.challenge, undefined, 'authentication required');
      if (this.ok.size >= CACHE_MAX) this.ok.clear();
      this.ok.add(key);
    }
    return { user };
  }
}
