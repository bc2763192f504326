import assert from 'node:assert/strict';
import { test } from 'node:test';
import { familiarName, familiarString, parseDockerRef, parseNormalizedReference, refName, refString } from './index.js';

test('normalises names as docker does', () => {
  const cases: Array<[string, string, string]> = [
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['user/app', 'docker.io/user/app:latest', 'user/app:latest'],
    ['localhost/app', 'localhost/app:latest', 'localhost/app:latest'],
    ['localhost:5000/a/b:v1', 'localhost:5000/a/b:v1', 'localhost:5000/a/b:v1'],
    ['Example.COM/app', 'Example.COM/app:latest', 'Example.COM/app:latest'],
    ['[::1]:5000/app', '[::1]:5000/app:latest', '[::1]:5000/app:latest'],
    ['a_b__c-d---e/x', 'docker.io/a_b__c-d---e/x:latest', 'a_b__c-d---e/x:latest'],
  ];
  for (const [input, full, familiar] of cases) {
    const r = parseDockerRef(input);
    assert.equal(refString(r), full, input);
    assert.equal(familiarString(r), familiar, input);
  }
  const d = `sha256:${'ab'.repeat(32)}`;
  const r = parseNormalizedReference(`host:5000/a/b@${d}`);
  assert.equal(r.domain, 'host:5000');
  assert.equal(r.path, 'a/b');
  assert.equal(r.digest, d);
  assert.equal(r.tag, undefined);
  assert.equal(refName(r), 'host:5000/a/b');
  assert.equal(familiarName(parseNormalizedReference('docker.io/library/a/b')), 'library/a/b');
});

test('rejects invalid references with clear messages', () => {
  assert.throws(() => parseNormalizedReference('Busybox'), /repository name \(library\/Busybox\) must be lowercase/);
  assert.throws(
    () => parseNormalizedReference('a'.repeat(64).replace(/a/g, 'f')),
    /cannot specify 64-byte hexadecimal strings/,
  );
  assert.throws(() => parseNormalizedReference(''), /invalid reference format/);
  assert.throws(() => parseNormalizedReference('a/../b'), /invalid reference format/);
  assert.throws(() => parseNormalizedReference('a:b:c'), /invalid reference format/);
  assert.throws(() => parseNormalizedReference('-a'), /invalid reference format/);
  assert.throws(() => parseNormalizedReference(`a:${'t'.repeat(129)}`), /invalid reference format/);
  assert.throws(() => parseNormalizedReference('a@sha256:abc'), /invalid reference format/);
  assert.throws(() => parseNormalizedReference(`x/${'a'.repeat(260)}`), /255 characters/);
});
