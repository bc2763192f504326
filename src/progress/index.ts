// Docker's JSON-message stream (moby pkg/jsonmessage), the wire format of
// pull/push/load/import/build progress: one JSON object per line.
//
//   {"status":"Downloading","progressDetail":{"current":1,"total":9},"id":"a1b2c3d4e5f6"}
//   {"stream":"Loaded image: busybox:latest\n"}
//   {"errorDetail":{"message":"…"},"error":"…"}      (always the last line)
//   {"aux":{…}}
//
// Producers (daemon services, the distribution module) talk to a
// ProgressSink; the API layer supplies a JsonMessageWriter bound to the
// HTTP response. A sink never throws when the client went away: writes are
// dropped and `closed` becomes true so long operations may stop early.
import type { Writable } from 'node:stream';

export interface ProgressDetail {
  current?: number;
  total?: number;
  start?: number;
  hidecounts?: boolean;
  units?: string;
}

export interface JsonMessage {
  stream?: string;
  status?: string;
  progressDetail?: ProgressDetail;
  progress?: string;
  id?: string;
  errorDetail?: { code?: number; message: string };
  error?: string;
  aux?: unknown;
}

export interface ProgressSink {
  /** A status line, optionally for one item (`id`, e.g. a 12-hex layer ID) with progress. */
  status(status: string, id?: string, detail?: ProgressDetail): void;
  /** Free text (`{"stream": …}`); a newline is added when missing. */
  stream(text: string): void;
  aux(value: unknown): void;
  /** The terminal error line. */
  error(message: string): void;
  readonly closed: boolean;
}

/** A sink that discards everything. */
export const nullProgress: ProgressSink = {
  status() {},
  stream() {},
  aux() {},
  error() {},
  closed: false,
};

/** Writes JSON messages, one per line, to `out` (an HTTP response). */
export class JsonMessageWriter implements ProgressSink {
  private done = false;
  constructor(private readonly out: Writable) {
    out.on('close', () => {
      this.done = true;
    });
  }
  get closed(): boolean {
    return this.done || this.out.destroyed || this.out.writableEnded;
  }
  write(m: JsonMessage): void {
    if (this.closed) return;
    this.out.write(`${JSON.stringify(m)}\r\n`);
  }
  status(status: string, id?: string, detail?: ProgressDetail): void {
    const m: JsonMessage = { status };
    if (detail) m.progressDetail = detail;
    if (id) m.id = id;
    this.write(m);
  }
  stream(text: string): void {
    this.write({ stream: text.endsWith('\n') ? text : `${text}\n` });
  }
  aux(value: unknown): void {
    this.write({ aux: value });
  }
  error(message: string): void {
    this.write({ errorDetail: { message }, error: message });
  }
}
