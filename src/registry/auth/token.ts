// Token auth (distribution's auth.token): the client is sent to a token
// server by `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` and
// comes back with a JWT. The registry verifies it with node:crypto only:
//   - alg RS256/384/512 or ES256/384/512 (never `none`, never HMAC);
//   - the signing key is the leaf of the `x5c` chain, each certificate signed
//     by the next and the last by a certificate of `rootcertbundle` (validity
//     dates checked), or the root certificate whose libtrust key ID is `kid`;
//   - `iss` equals `issuer`, `aud` names `service`, `exp`/`nbf` hold (60 s
//     leeway, as distribution), and `access` grants every action the request
//     needs; otherwise 401 with `error="insufficient_scope"` or `"invalid_token"`.
import { createHash, createPublicKey, type KeyObject, verify, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import { invalidArgument } from '../../errors/index.js';
import type { Access, AccessController, AuthContext } from './access.js';
import { scopeString, unauthorized } from './access.js';

const LEEWAY_S = 60;
const ALGS: Record<string, { hash: string; kind: 'rsa' | 'ec' }> = {
  RS256: { hash: 'sha256', kind: 'rsa' },
  RS384: { hash: 'sha384', kind: 'rsa' },
  RS512: { hash: 'sha512', kind: 'rsa' },
  ES256: { hash: 'sha256', kind: 'ec' },
  ES384: { hash: 'sha384', kind: 'ec' },
  ES512: { hash: 'sha512', kind: 'ec' },
};

/** libtrust's key ID: base32 of the first 240 bits of sha256(SPKI DER), in 4-character groups. */
export function libtrustKeyId(key: KeyObject): string {
  const der = key.export({ type: 'spki', format: 'der' });
  const sum = createHash('sha256').update(der).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of sum) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out.match(/.{4}/g)!.join(':');
}

export function parseCertBundle(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

const b64url = (s: string) => Buffer.from(s, 'base64url');

export interface TokenClaims {
  iss?: string;
  sub?: string;
  aud?: string | string[];
  exp?: number;
  nbf?: number;
  iat?: number;
  jti?: string;
  access?: Array<{ type: string; name: string; actions: string[] }>;
}

export class TokenController implements AccessController {
  private readonly roots: X509Certificate[];
  private readonly byKid = new Map<string, KeyObject>();

  constructor(
    readonly realm: string,
    readonly service: string,
    readonly issuer: string,
    rootcertbundle: string,
  ) {
    let pem: string;
    try {
      pem = fs.readFileSync(rootcertbundle, 'utf8');
    } catch (e) {
      throw invalidArgument(`auth.token.rootcertbundle: cannot read ${rootcertbundle}: ${(e as Error).message}`);
    }
    this.roots = parseCertBundle(pem);
    if (this.roots.length === 0)
      throw invalidArgument(`auth.token.rootcertbundle: no certificates in ${rootcertbundle}`);
    for (const c of this.roots) this.byKid.set(libtrustKeyId(c.publicKey), c.publicKey);
  }

  private challenge(access: Access[], error?: string): string {
    let c = `Bearer realm=${JSON.stringify(this.realm)},service=${JSON.stringify(this.service)}`;
    if (access.length) c += `,scope=${JSON.stringify(scopeString(access))}`;
    if (error) c += `,error=${JSON.stringify(error)}`;
    return c;
  }

  async authorize(req: http.IncomingMessage, access: Access[]): Promise<AuthContext> {
    const h = req.headers.authorization;
    if (!h || !/^bearer /i.test(h)) throw unauthorized(this.challenge(access));
    let claims: TokenClaims;
    try {
      claims = this.verify(h.slice(7).trim());
    } catch (e) {
      throw unauthorized(this.challenge(access, 'invalid_token'), undefined, `invalid token: ${(e as Error).message}`);
    }
    const granted = claims.access ?? [];
    const missing = access.filter(
      (a) =>
        !granted.some(
          (g) =>
            g.type === a.type &&
            g.name === a.name &&
            Array.isArray(g.actions) &&
            (g.actions.includes(a.action) || g.actions.includes('*')),
        ),
    );
    if (missing.length) {
      throw unauthorized(this.challenge(access, 'insufficient_scope'), scopeString(missing), 'insufficient scope');
    }
    return claims.sub ? { user: claims.sub } : {};
  }

  /** Verifies a compact JWS and its claims; throws with the reason. */
  verify(token: string, now = Date.now() / 1000): TokenClaims {
    const parts = token.split('.');
    if (parts.length !== 3) throw new Error('not a compact JWS');
    const header = JSON.parse(b64url(parts[0]!).toString('utf8')) as { alg?: string; x5c?: string[]; kid?: string };
    const alg = ALGS[header.alg ?? ''];
    if (!alg) throw new Error(`unsupported alg ${JSON.stringify(header.alg)}`);
    let key: KeyObject;
    if (Array.isArray(header.x5c) && header.x5c.length) key = this.keyFromChain(header.x5c, now);
    else if (typeof header.kid === 'string' && this.byKid.has(header.kid)) key = this.byKid.get(header.kid)!;
    else throw new Error('token has neither an x5c chain nor a known kid');
    const expectKind = alg.kind === 'rsa' ? 'rsa' : 'ec';
    if (key.asymmetricKeyType !== expectKind && !(expectKind === 'rsa' && key.asymmetricKeyType === 'rsa-pss'))
      throw new Error(`alg ${header.alg} does not match a ${key.asymmetricKeyType} key`);
    const ok = verify(
      alg.hash,
      Buffer.from(`${parts[0]}.${parts[1]}`),
      alg.kind === 'ec' ? { key, dsaEncoding: 'ieee-p1363' } : key,
      b64url(parts[2]!),
    );
    if (!ok) throw new Error('signature does not verify');
    const claims = JSON.parse(b64url(parts[1]!).toString('utf8')) as TokenClaims;
    if (claims.iss !== this.issuer) throw new Error(`issuer ${JSON.stringify(claims.iss)} is not trusted`);
    const aud = Array.isArray(claims.aud) ? claims.aud : claims.aud === undefined ? [] : [claims.aud];
    if (!aud.includes(this.service)) throw new Error(`audience ${JSON.stringify(claims.aud)} is not this service`);
    if (typeof claims.exp !== 'number' || now > claims.exp + LEEWAY_S) throw new Error('token expired');
    if (typeof claims.nbf === 'number' && now + LEEWAY_S < claims.nbf) throw new Error('token not yet valid');
    if (claims.access !== undefined && !Array.isArray(claims.access)) throw new Error('access claim is not a list');
    return claims;
  }

  private keyFromChain(x5c: string[], now: number): KeyObject {
    const certs = x5c.map((b) => new X509Certificate(Buffer.from(b, 'base64')));
    const at = new Date(now * 1000);
    for (const c of certs) {
      if (at < new Date(c.validFrom) || at > new Date(c.validTo))
        throw new Error(`certificate ${c.subject} is not valid now`);
    }
    for (let i = 0; i + 1 < certs.length; i++) {
      if (!certs[i]!.verify(certs[i + 1]!.publicKey)) throw new Error('x5c chain is broken');
    }
    const last = certs.at(-1)!;
    const trusted = this.roots.some(
      (r) => r.fingerprint256 === last.fingerprint256 || (last.checkIssued(r) && last.verify(r.publicKey)),
    );
    if (!trusted) throw new Error('x5c chain does not end in rootcertbundle');
    return createPublicKey(certs[0]!.publicKey.export({ type: 'spki', format: 'pem' }));
  }
}
