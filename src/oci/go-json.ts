// Go's encoding/json string encoding, for files that must match what dockerd
// writes byte for byte (repositories.json, docker save's v1 JSON, log attrs).

/** A JSON string as Go's json.Marshal writes it: HTML-safe escapes of <, > and &, and of U+2028/U+2029. */
export function goJsonString(s: string): string {
  return JSON.stringify(s)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}
