// Content digests: `algorithm:encoded`, as the OCI image spec defines them.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { invalidArgument } from '../errors/index.js';

/** A validated digest string such as `sha256:<64 hex>`. */
export type Digest = string & { readonly __digest: unique symbol };

const ALGORITHM = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*$/;
const ENCODED = /^[a-zA-Z0-9=_-]+$/;
const REGISTERED: Record<string, RegExp> = {
  sha256: /^[a-f0-9]{64}$/,
  sha512: /^[a-f0-9]{128}$/,
};

/** Parses and validates a digest; throws invalid-argument with a clear message. */
export function parseDigest(s: string): Digest {
  const i = s.indexOf(':');
  if (i <= 0 || i === s.length - 1)
    throw invalidArgument(`invalid digest ${JSON.stringify(s)}: expected algorithm:hex`);
  const alg = s.slice(0, i);
  const enc = s.slice(i + 1);
  if (!ALGORITHM.test(alg) || !ENCODED.test(enc)) throw invalidArgument(`invalid digest ${JSON.stringify(s)}`);
  const re = REGISTERED[alg];
  if (!re) throw invalidArgument(`unsupported digest algorithm ${JSON.stringify(alg)} in ${JSON.stringify(s)}`);
  if (!re.test(enc)) {
    throw invalidArgument(
      `invalid digest ${JSON.stringify(s)}: ${alg} needs ${alg === 'sha256' ? 64 : 128} lowercase hex characters`,
    );
  }
  return s as Digest;
}

export function isDigest(s: string): s is Digest {
  try {
    parseDigest(s);
    return true;
  } catch {
    return false;
  }
}

export function digestAlgorithm(d: Digest): string {
  return d.slice(0, d.indexOf(':'));
}

/** The encoded part (hex for sha256) of a digest. */
export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

export function sha256(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

export function sha256FromHex(hex: string): Digest {
  return parseDigest(`sha256:${hex}`);
}

/** A pass-through stream that digests (and counts) what flows through it. */
export class DigestStream extends Transform {
  private readonly hash: Hash;
  private readonly algorithm: string;
  bytes = 0;
  private result?: Digest;

  constructor(algorithm = 'sha256') {
    super();
    this.algorithm = algorithm;
    this.hash = createHash(algorithm);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  /** The digest of everything that passed; valid once the stream has ended. */
  digest(): Digest {
    if (!this.result) this.result = `${this.algorithm}:${this.hash.digest('hex')}` as Digest;
    return this.result;
  }
}

/**
 * A pass-through that fails the stream if the bytes do not match `expected`
 * (and `size`, when given). Nothing downstream may treat the data as trusted
 * before the stream ends without error.
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash;
  private bytes = 0;
  constructor(
    private readonly expected: Digest,
    private readonly size?: number,
  ) {
    super();
    this.hash = createHash(digestAlgorithm(expected));
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.size !== undefined && this.bytes > this.size) {
      cb(invalidArgument(`content for ${this.expected} is larger than the expected ${this.size} bytes`));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    const got = `${digestAlgorithm(this.expected)}:${this.hash.digest('hex')}`;
    if (this.size !== undefined && this.bytes !== this.size) {
      cb(invalidArgument(`size mismatch for ${this.expected}: expected ${this.size} bytes, got ${this.bytes}`));
    } else if (got !== this.expected) {
      cb(invalidArgument(`digest mismatch: expected ${this.expected}, got ${got}`));
    } else cb();
  }
}
