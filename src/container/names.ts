// Container names: `/name` uniqueness with dockerd's texts, and random
// adjective_surname names in the style of moby's pkg/namesgenerator (berth's
// own word lists: adjectives, and surnames of scientists, engineers and
// explorers).
import { randomInt } from 'node:crypto';
import { conflict, invalidArgument, notFound } from '../errors/index.js';

export const NAME_CHARS = '[a-zA-Z0-9][a-zA-Z0-9_.-]';
const NAME_RE = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

const LEFT = [
  'able',
  'agile',
  'amber',
  'ample',
  'ancient',
  'arctic',
  'ardent',
  'astute',
  'azure',
  'balmy',
  'bashful',
  'bold',
  'brave',
  'breezy',
  'bright',
  'brisk',
  'calm',
  'candid',
  'careful',
  'cheerful',
  'civic',
  'clever',
  'cosmic',
  'crisp',
  'curious',
  'daring',
  'dapper',
  'deft',
  'devout',
  'diligent',
  'dreamy',
  'eager',
  'earnest',
  'elated',
  'electric',
  'elegant',
  'epic',
  'fair',
  'famous',
  'fearless',
  'festive',
  'fluent',
  'fond',
  'frank',
  'gallant',
  'gentle',
  'gifted',
  'glad',
  'golden',
  'graceful',
  'grand',
  'hardy',
  'hearty',
  'helpful',
  'honest',
  'humble',
  'jolly',
  'jovial',
  'keen',
  'kind',
  'lively',
  'loyal',
  'lucid',
  'lucky',
  'mellow',
  'merry',
  'mighty',
  'modest',
  'nimble',
  'noble',
  'patient',
  'peaceful',
  'placid',
  'plucky',
  'polite',
  'proud',
  'quiet',
  'radiant',
  'rapid',
  'ready',
  'robust',
  'rustic',
  'serene',
  'sharp',
  'shiny',
  'sincere',
  'smart',
  'snappy',
  'sober',
  'solid',
  'spry',
  'stoic',
  'sturdy',
  'sunny',
  'swift',
  'tender',
  'tidy',
  'trusty',
  'upbeat',
  'valiant',
  'vibrant',
  'vivid',
  'warm',
  'wise',
  'witty',
  'zealous',
  'zen',
  'zesty',
];

const RIGHT = [
  'agnesi',
  'alhazen',
  'ampere',
  'archimedes',
  'avogadro',
  'babbage',
  'banneker',
  'bardeen',
  'bell',
  'bernoulli',
  'bohr',
  'boole',
  'bose',
  'brahe',
  'cannon',
  'carson',
  'cavendish',
  'chandrasekhar',
  'copernicus',
  'curie',
  'darwin',
  'dirac',
  'edison',
  'einstein',
  'euclid',
  'euler',
  'faraday',
  'fermat',
  'fermi',
  'feynman',
  'fibonacci',
  'franklin',
  'galileo',
  'galois',
  'gauss',
  'germain',
  'goodall',
  'hamilton',
  'hawking',
  'heisenberg',
  'hertz',
  'hilbert',
  'hopper',
  'hubble',
  'huygens',
  'hypatia',
  'jemison',
  'joule',
  'kelvin',
  'kepler',
  'khayyam',
  'kovalevskaya',
  'lamarr',
  'laplace',
  'leibniz',
  'lovelace',
  'maxwell',
  'meitner',
  'mendel',
  'mirzakhani',
  'morse',
  'napier',
  'nash',
  'newton',
  'nobel',
  'noether',
  'ohm',
  'pascal',
  'pasteur',
  'pauli',
  'planck',
  'poincare',
  'ptolemy',
  'raman',
  'ramanujan',
  'riemann',
  'ride',
  'rutherford',
  'sagan',
  'salk',
  'shannon',
  'somerville',
  'tesla',
  'thompson',
  'turing',
  'tycho',
  'volta',
  'watt',
  'wiles',
  'wright',
  'yalow',
  'yonath',
  'zuse',
];

export const WORDS = { left: LEFT, right: RIGHT };

/** adjective_surname; with retry > 0 a random digit is appended (like moby). */
export function randomName(retry = 0): string {
  const name = `${LEFT[randomInt(LEFT.length)]}_${RIGHT[randomInt(RIGHT.length)]}`;
  return retry > 0 ? `${name}${randomInt(10)}` : name;
}

export function validateName(name: string): string {
  if (!NAME_RE.test(name)) throw invalidArgument(`Invalid container name (${name}), only ${NAME_CHARS} are allowed`);
  return name.startsWith('/') ? name : `/${name}`;
}

export function nameConflictMessage(name: string, id: string): string {
  return `Conflict. The container name "${name}" is already in use by container "${id}". You have to remove (or rename) that container to be able to reuse that name.`;
}

/** `/name` → container ID. */
export class NameRegistry {
  private readonly names = new Map<string, string>();

  /** Reserves a user-given name (validated, `/` added); throws dockerd's conflict. */
  reserve(name: string, id: string): string {
    const n = validateName(name);
    const owner = this.names.get(n);
    if (owner !== undefined && owner !== id) throw conflict(nameConflictMessage(n, owner));
    this.names.set(n, id);
    return n;
  }

  /** A random free name for `id` (5 tries of adjective_surname, then the short ID), reserved. */
  generate(id: string): string {
    for (let i = 0; i < 6; i++) {
      const n = `/${randomName(i)}`;
      if (!this.names.has(n)) {
        this.names.set(n, id);
        return n;
      }
    }
    const n = `/${id.slice(0, 12)}`;
    this.names.set(n, id);
    return n;
  }

  release(name: string): void {
    this.names.delete(name.startsWith('/') ? name : `/${name}`);
  }

  /** Releases every name held by `id`. */
  releaseAll(id: string): void {
    for (const [n, owner] of this.names) if (owner === id) this.names.delete(n);
  }

  get(name: string): string | undefined {
    return this.names.get(name.startsWith('/') ? name : `/${name}`);
  }

  getOrThrow(name: string): string {
    const id = this.get(name);
    if (!id) throw notFound(`Could not find entity for ${name}`);
    return id;
  }

  /** Moves `id`'s name to `newName` atomically (docker rename); returns the new `/name`. */
  rename(oldName: string, newName: string, id: string): string {
    const n = this.reserve(newName, id);
    if (n !== (oldName.startsWith('/') ? oldName : `/${oldName}`)) this.release(oldName);
    return n;
  }

  entries(): Array<[string, string]> {
    return [...this.names];
  }
}
