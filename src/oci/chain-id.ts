// ChainID as the OCI image spec (and the seed document) computes it:
//   ChainID(L0) = DiffID(L0)
//   ChainID(L0|…|Ln) = sha256(ChainID(L0|…|Ln-1) + " " + DiffID(Ln))
import { type Digest, sha256 } from './digest.js';

export function chainIdOf(parent: Digest | undefined, diffId: Digest): Digest {
  return parent ? sha256(`${parent} ${diffId}`) : diffId;
}

/** The chain ID of every prefix of `diffIds`: result[i] = ChainID(L0|…|Li). */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  let prev: Digest | undefined;
  for (const d of diffIds) {
    prev = chainIdOf(prev, d);
    out.push(prev);
  }
  return out;
}

/** The chain ID of the whole stack, or undefined for an image with no layers. */
export function chainId(diffIds: readonly Digest[]): Digest | undefined {
  return chainIds(diffIds).at(-1);
}
