import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { chainId, chainIds, type Digest, DigestStream, parseDigest, sha256, VerifyingStream } from './index.js';

test('chain IDs match the seed document (test-image rootfs)', () => {
  const diffIds = [
    'sha256:7bff100f35cb359a368537bb07829b055fe8e0b1cb01085a3a628ae9c187c7b8',
    'sha256:b1ddbff022577cd249a074285a1a7eb76d7c9139132ba5aa4272fc115dfa9e36',
    'sha256:9edc93f4dcf640f272ed73f933863dbefae6719745093d09c6c6908f402b1c34',
    'sha256:a6c8828ba4b58628284f783d3c918ac379ae2aba0830f4c926a330842361ffb6',
  ].map(parseDigest);
  assert.deepEqual(chainIds(diffIds), [
    'sha256:7bff100f35cb359a368537bb07829b055fe8e0b1cb01085a3a628ae9c187c7b8',
    'sha256:db7c15c2f03f63a658285a55edc0a0012ccd0033f4695d4b428b1b464637e655',
    'sha256:0e88764cdf90e8a5d6597b2d8e65b8f70e7b62982b0aee934195b54600320d47',
    'sha256:80fe1abae43103e3be54ac2813114d1dea6fc91454a3369104b8dd6e2b1363f5',
  ]);
  assert.equal(chainId(diffIds), 'sha256:80fe1abae43103e3be54ac2813114d1dea6fc91454a3369104b8dd6e2b1363f5');
  assert.equal(chainId([]), undefined);
});

test('parseDigest accepts valid digests and rejects bad ones with clear messages', () => {
  const ok = `sha256:${'a'.repeat(64)}`;
  assert.equal(parseDigest(ok), ok);
  assert.equal(parseDigest(`sha512:${'0'.repeat(128)}`), `sha512:${'0'.repeat(128)}`);
  for (const bad of [
    '',
    'sha256',
    'sha256:',
    `sha256:${'A'.repeat(64)}`,
    `sha256:${'a'.repeat(63)}`,
    `sha256:${'a'.repeat(65)}`,
    `md5:${'a'.repeat(32)}`,
    `sha256:../../${'a'.repeat(58)}`,
    `SHA256:${'a'.repeat(64)}`,
  ]) {
    assert.throws(() => parseDigest(bad), /digest/, bad);
  }
});

test('DigestStream and VerifyingStream', async () => {
  const data = Buffer.from('hello berth');
  const ds = new DigestStream();
  await pipeline(Readable.from([data]), ds, new Writable({ write: (_c, _e, cb) => cb() }));
  assert.equal(ds.digest(), sha256(data));
  assert.equal(ds.bytes, data.length);

  await pipeline(
    Readable.from([data]),
    new VerifyingStream(sha256(data), data.length),
    new Writable({ write: (_c, _e, cb) => cb() }),
  );
  await assert.rejects(
    pipeline(
      Readable.from([data]),
      new VerifyingStream(sha256('other') as Digest),
      new Writable({ write: (_c, _e, cb) => cb() }),
    ),
    /digest mismatch/,
  );
  await assert.rejects(
    pipeline(
      Readable.from([data]),
      new VerifyingStream(sha256(data), 3),
      new Writable({ write: (_c, _e, cb) => cb() }),
    ),
    /larger than/,
  );
});
