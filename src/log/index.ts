// Logs in dockerd's (logrus text) format:
//   time="2026-11-28T04:22:31.123456789Z" level=info msg="…" key=value
// --raw-logs keeps the same shape (no colours ever: we never write ANSI codes).
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'fatal';
const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, fatal: 4 };
export const LOG_LEVELS = Object.keys(ORDER) as LogLevel[];

function quoteIfNeeded(v: string): string {
  return v === '' || /[\s"=\\]/.test(v) || /[^\x21-\x7e]/.test(v) ? JSON.stringify(v) : v;
}

function timestamp(): string {
  // logrus prints RFC3339Nano; JS has milliseconds, padded to nanoseconds.
  const d = new Date();
  return `${d.toISOString().slice(0, 23)}${String(process.hrtime.bigint() % 1000000n).padStart(6, '0')}Z`;
}

export class Logger {
  constructor(
    private level: LogLevel = 'info',
    private readonly out: (line: string) => void = (l) => process.stderr.write(l),
    private readonly fields: Record<string, string> = {},
  ) {}

  setLevel(level: LogLevel): void {
    this.level = level;
  }
  getLevel(): LogLevel {
    return this.level;
  }

  with(fields: Record<string, string | number | boolean>): Logger {
    const merged = { ...this.fields };
    for (const [k, v] of Object.entries(fields)) merged[k] = String(v);
    const child = new Logger(this.level, this.out, merged);
    // children follow the parent's level changes (SIGHUP reload)
    Object.defineProperty(child, 'level', { get: () => this.level, set: (l: LogLevel) => this.setLevel(l) });
    return child;
  }

  log(level: LogLevel, msg: string, fields?: Record<string, string | number | boolean>): void {
    if (ORDER[level] < ORDER[this.level]) return;
    let line = `time="${timestamp()}" level=${level === 'warn' ? 'warning' : level} msg=${JSON.stringify(msg)}`;
    const all = fields ? { ...this.fields, ...fields } : this.fields;
    for (const [k, v] of Object.entries(all)) line += ` ${k}=${quoteIfNeeded(String(v))}`;
    this.out(`${line}\n`);
  }
  debug(msg: string, f?: Record<string, string | number | boolean>) {
    this.log('debug', msg, f);
  }
  info(msg: string, f?: Record<string, string | number | boolean>) {
    this.log('info', msg, f);
  }
  warn(msg: string, f?: Record<string, string | number | boolean>) {
    this.log('warn', msg, f);
  }
  error(msg: string, f?: Record<string, string | number | boolean>) {
    this.log('error', msg, f);
  }
}

/** A logger that drops everything (tests, library use). */
export const nullLogger = new Logger('fatal', () => {});
