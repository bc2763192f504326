// WWW-Authenticate parsing (RFC 7235 challenges as distribution's
// registry/client/auth/challenge reads them): `Bearer realm="…",service="…"`,
// `Basic realm="…"`; several challenges may share one header or come in many.

export interface Challenge {
  /** Lower-cased scheme: "bearer", "basic", … */
  scheme: string;
  /** Parameters, names lower-cased. */
  params: Record<string, string>;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;

/** Parses one or more WWW-Authenticate header values. Malformed parts are skipped. */
export function parseChallenges(values: string | string[] | undefined | null): Challenge[] {
  if (!values) return [];
  const list = Array.isArray(values) ? values : [values];
  const out: Challenge[] = [];
  for (const v of list) parseOne(v, out);
  return out;
}

function parseOne(header: string, out: Challenge[]): void {
  let s = header;
  const skipWs = () => {
    s = s.replace(/^[ \t]+/, '');
  };
  let current: Challenge | undefined;
  while (s.length) {
    skipWs();
    if (s.startsWith(',')) {
      s = s.slice(1);
      continue;
    }
    const m = TOKEN.exec(s);
    if (!m) break;
    const word = m[0];
    const rest = s.slice(word.length);
    const afterWs = rest.replace(/^[ \t]+/, '');
    if (current && afterWs.startsWith('=')) {
      // auth-param
      s = afterWs.slice(1).replace(/^[ \t]+/, '');
      let value = '';
      if (s.startsWith('"')) {
        let i = 1;
        for (; i < s.length && s[i] !== '"'; i++) {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i];
        }
        s = s.slice(i + 1);
      } else {
        const vm = TOKEN.exec(s);
        value = vm ? vm[0] : '';
        s = s.slice(value.length);
      }
      current.params[word.toLowerCase()] = value;
      continue;
    }
    // a new challenge: scheme
    current = { scheme: word.toLowerCase(), params: {} };
    out.push(current);
    s = rest;
  }
}
