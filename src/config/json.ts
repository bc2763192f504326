// A strict JSON parser that keeps the position of every value and key, so
// daemon.json errors can name a line and column. It differs from JSON.parse in
// what it reports, never in what it accepts, with one exception: a key repeated
// in the same object is refused (Go's encoding/json, and so dockerd, silently
// keeps the last one; the seed's daemon.json relies on that by accident).

export interface Pos {
  line: number; // 1-based
  column: number; // 1-based, in UTF-16 code units of the line
  offset: number;
}

export type JsonNode =
  | { type: 'object'; pos: Pos; entries: JsonEntry[] }
  | { type: 'array'; pos: Pos; items: JsonNode[] }
  | { type: 'string'; pos: Pos; value: string }
  | { type: 'number'; pos: Pos; value: number; raw: string }
  | { type: 'boolean'; pos: Pos; value: boolean }
  | { type: 'null'; pos: Pos };

export interface JsonEntry {
  key: string;
  keyPos: Pos;
  value: JsonNode;
}

export class JsonSyntaxError extends Error {
  constructor(
    readonly reason: string,
    readonly pos: Pos,
  ) {
    super(`invalid JSON at line ${pos.line}, column ${pos.column}: ${reason}`);
    this.name = 'JsonSyntaxError';
  }
}

/** Converts a node to a plain JS value (objects become null-prototype records). */
export function toPlain(node: JsonNode): unknown {
  switch (node.type) {
    case 'object': {
      const o: Record<string, unknown> = Object.create(null);
      for (const e of node.entries) o[e.key] = toPlain(e.value);
      return o;
    }
    case 'array':
      return node.items.map(toPlain);
    case 'null':
      return null;
    default:
      return node.value;
  }
}

export function describeNode(node: JsonNode): string {
  switch (node.type) {
    case 'object':
      return 'an object';
    case 'array':
      return 'an array';
    case 'string':
      return `the string ${JSON.stringify(node.value)}`;
    case 'number':
      return `the number ${node.raw}`;
    case 'boolean':
      return `the boolean ${node.value}`;
    case 'null':
      return 'null';
  }
}

function posAt(text: string, offset: number): Pos {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1, offset };
}

/** Finds the first `//`, `/*` or `#` comment outside strings, if any. */
export function findComment(text: string): { pos: Pos; marker: string } | undefined {
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '/' && (text[i + 1] === '/' || text[i + 1] === '*')) {
      return { pos: posAt(text, i), marker: text.slice(i, i + 2) };
    } else if (c === '#') return { pos: posAt(text, i), marker: '#' };
  }
  return undefined;
}

function commentError(pos: Pos, marker: string): JsonSyntaxError {
  const what = marker === '#' ? '"#" comments' : marker === '//' ? '"//" comments' : '"/* */" comments';
  return new JsonSyntaxError(
    `JSON does not allow comments, and this file has ${what}; remove every comment (daemon.json is plain JSON)`,
    pos,
  );
}

function charName(c: string | undefined): string {
  if (c === undefined) return 'end of file';
  if (c === '\n') return 'a newline';
  return `character ${JSON.stringify(c)}`;
}

export function parseJson(text: string): JsonNode {
  let i = 0;
  const n = text.length;

  const fail = (reason: string, at = i): never => {
    // Whatever went wrong, comments are the first thing to tell the user about.
    const comment = findComment(text);
    if (comment) throw commentError(comment.pos, comment.marker);
    throw new JsonSyntaxError(reason, posAt(text, at));
  };

  const skipWs = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++;
      else break;
    }
  };

  const parseString = (): string => {
    // text[i] === '"'
    const start = i;
    i++;
    let out = '';
    for (;;) {
      if (i >= n) fail('unterminated string', start);
      const c = text[i]!;
      if (c === '"') {
        i++;
        return out;
      }
      if (c === '\\') {
        const e = text[i + 1];
        const map: Record<string, string> = {
          '"': '"',
          '\\': '\\',
          '/': '/',
          b: '\b',
          f: '\f',
          n: '\n',
          r: '\r',
          t: '\t',
        };
        if (e !== undefined && e in map) {
          out += map[e];
          i += 2;
        } else if (e === 'u') {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('invalid \\u escape in string');
          out += String.fromCharCode(Number.parseInt(hex, 16));
          i += 6;
        } else {
          fail(`invalid escape "\\${e ?? ''}" in string`);
        }
        continue;
      }
      if (c.charCodeAt(0) < 0x20) fail(`${charName(c)} inside a string (use an escape)`);
      out += c;
      i++;
    }
  };

  const parseValue = (depth: number): JsonNode => {
    if (depth > 512) fail('nesting too deep');
    skipWs();
    const pos = posAt(text, i);
    const c = text[i];
    if (c === '{') {
      i++;
      const entries: JsonEntry[] = [];
      const seen = new Map<string, Pos>();
      skipWs();
      if (text[i] === '}') {
        i++;
        return { type: 'object', pos, entries };
      }
      for (;;) {
        skipWs();
        if (text[i] === '}') fail('trailing comma before "}" (JSON does not allow it)');
        if (text[i] !== '"') fail(`expected a quoted key, found ${charName(text[i])}`);
        const keyPos = posAt(text, i);
        const key = parseString();
        skipWs();
        if (text[i] !== ':') fail(`expected ":" after key ${JSON.stringify(key)}, found ${charName(text[i])}`);
        i++;
        const value = parseValue(depth + 1);
        const first = seen.get(key);
        if (first) {
          throw new JsonSyntaxError(
            `key ${JSON.stringify(key)} appears twice in the same object (first at line ${first.line}, column ${first.column}); ` +
              'dockerd would silently use the last one, berth refuses the ambiguity',
            keyPos,
          );
        }
        seen.set(key, keyPos);
        entries.push({ key, keyPos, value });
        skipWs();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return { type: 'object', pos, entries };
        }
        fail(`expected "," or "}" after the value of ${JSON.stringify(key)}, found ${charName(text[i])}`);
      }
    }
    if (c === '[') {
      i++;
      const items: JsonNode[] = [];
      skipWs();
      if (text[i] === ']') {
        i++;
        return { type: 'array', pos, items };
      }
      for (;;) {
        skipWs();
        if (text[i] === ']') fail('trailing comma before "]" (JSON does not allow it)');
        items.push(parseValue(depth + 1));
        skipWs();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return { type: 'array', pos, items };
        }
        fail(`expected "," or "]" in array, found ${charName(text[i])}`);
      }
    }
    if (c === '"') return { type: 'string', pos, value: parseString() };
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i));
      if (!m) fail('invalid number');
      const raw = m![0];
      i += raw.length;
      return { type: 'number', pos, value: Number(raw), raw };
    }
    for (const [word, node] of [
      ['true', { type: 'boolean', pos, value: true }],
      ['false', { type: 'boolean', pos, value: false }],
      ['null', { type: 'null', pos }],
    ] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return node;
      }
    }
    if (c === '/' || c === '#') fail('comment');
    if (c === "'") fail("strings must use double quotes, found '");
    return fail(`unexpected ${charName(c)}`);
  };

  const root = parseValue(0);
  skipWs();
  if (i < n) fail(`unexpected ${charName(text[i])} after the end of the top-level value`);
  return root;
}
