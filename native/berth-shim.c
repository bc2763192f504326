// berth-shim: one small process per container. Started by berthd, detached
// (own session), child subreaper. Creates the container through the OCI
// runtime, owns its stdio (pipes, or the pty master received over the console
// socket), writes the container log itself (json-file in Docker's format,
// moby's `local` format, or none), reaps init, records the exit in state.json and serves a control
// socket (see src/runtime/shim-protocol.md). Single-threaded poll() loop.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define MAX_RT_ARGS 32
#define LOG_BUF 16384          /* Docker's copier buffer: longer lines become partial messages */
#define STDIN_BUF 65536
#define CLIENT_OUT_MAX (4 << 20) /* an attach client this far behind is dropped */
#define DRAIN_MS 2000          /* after init exits, wait this long for stdio EOF */

/* ---------- arguments ---------- */
static const char *a_id, *a_bundle, *a_dir, *a_runtime = "runc", *a_log_driver = "json-file", *a_log_path, *a_log_attrs;
/* local: LogEntry attrs fields (6), protobuf bytes in hex, appended to every entry as they are */
static const char *a_log_attrs_pb;
static const char *a_rt_args[MAX_RT_ARGS];
static int a_nrt, a_tty, a_stdin, a_stdin_once, a_run;
static long long a_max_size = -1;
static int a_max_file = 1;

/* ---------- state ---------- */
enum { ST_CREATED, ST_RUNNING, ST_STOPPED };
static int g_status = ST_CREATED;
static pid_t g_init_pid;
static int g_exit_code = -1, g_exit_signal, g_oom;
static long long g_oom_base = -1;
static char g_oom_file[1024];
static struct timespec g_started, g_finished;
static int g_init_exited, g_finalized;
static struct timespec g_exit_seen;
/* --run: the container was started by `runtime run --detach`; its output is
   not read until berthd's `start` (after attaching the clients that must see
   all of it), or HOLD_MS at the latest (berthd gone). */
#define HOLD_MS 10000
static int g_hold;
static struct timespec g_hold_since;

static void release_hold(void) {
  g_hold = 0;
  /* the stdio drain window starts now, not when init exited during the hold */
  if (g_init_exited) clock_gettime(CLOCK_MONOTONIC, &g_exit_seen);
}

static int fd_out = -1, fd_err = -1, fd_in = -1, fd_pty = -1; /* container stdio (shim side) */
static int g_stdin_closed, g_pty_hup;
static char g_stdin_buf[STDIN_BUF];
static size_t g_stdin_len;
static int g_stdin_close_pending;

static int g_listen = -1, g_sigfd = -1;

struct client {
  int fd;
  unsigned serial;
  int attach; /* 0: control lines, 1: attach stream */
  int w_in, w_out, w_err;
  int stdin_done;
  char in[8192];
  size_t inlen;
  char *out;
  size_t outlen, outcap;
  int close_after_flush;
};
static struct client g_cl[MAX_CLIENTS];
static unsigned g_serial;

/* pending asynchronous operations (runtime start/delete, wait) */
struct pending {
  int kind; /* 1 start, 2 delete, 3 wait */
  pid_t pid;
  int errfd;
  int ci;
  unsigned serial;
  char reqid[40];
};
#define MAX_PENDING 64
static struct pending g_pend[MAX_PENDING];
static int g_exit_after_delete;

/* ---------- small helpers ---------- */
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

static void logmsg(const char *fmt, ...) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  fprintf(stderr, "%lld.%03ld shim: ", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* RFC3339Nano as Go prints it: UTC, trailing zeros of the fraction trimmed. */
static size_t fmt_time(char *out, const struct timespec *ts) {
  struct tm tm;
  gmtime_r(&ts->tv_sec, &tm);
  size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
  long ns = ts->tv_nsec;
  if (ns) {
    char frac[16];
    snprintf(frac, sizeof frac, ".%09ld", ns);
    size_t fl = strlen(frac);
    while (frac[fl - 1] == '0') fl--;
    memcpy(out + n, frac, fl);
    n += fl;
  }
  out[n++] = 'Z';
  out[n] = 0;
  return n;
}

/* ---------- growable buffer ---------- */
struct buf {
  char *p;
  size_t len, cap;
};
static void buf_reserve(struct buf *b, size_t extra) {
  if (b->len + extra <= b->cap) return;
  size_t nc = b->cap ? b->cap : 4096;
  while (nc < b->len + extra) nc *= 2;
  char *np = realloc(b->p, nc);
  if (!np) die("out of memory");
  b->p = np;
  b->cap = nc;
}
static void buf_add(struct buf *b, const char *s, size_t n) {
  buf_reserve(b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
}
static void buf_adds(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* JSON string escaping exactly like moby's jsonlog (ffjsonWriteJSONBytesAsString):
   <0x20, \ " < > & escaped (\n \r short forms, others \u00XX), invalid UTF-8 bytes
   become \ufffd one by one, U+2028/U+2029 escaped. */
static int utf8_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  unsigned char lo = 0x80, hi = 0xBF;
  int need;
  if (c >= 0xC2 && c <= 0xDF) need = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    else if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    else if (c == 0xF4) hi = 0x8F;
  } else return 0;
  if (n < (size_t)need) return 0;
  if (s[1] < lo || s[1] > hi) return 0;
  for (int k = 2; k < need; k++)
    if (s[k] < 0x80 || s[k] > 0xBF) return 0;
  return need;
}

static void json_str(struct buf *b, const unsigned char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  buf_reserve(b, n * 6 + 2);
  char *o = b->p + b->len;
  *o++ = '"';
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      if (c >= 0x20 && c != '\\' && c != '"' && c != '<' && c != '>' && c != '&') {
        *o++ = (char)c;
      } else if (c == '\\' || c == '"') {
        *o++ = '\\';
        *o++ = (char)c;
      } else if (c == '\n') {
        *o++ = '\\';
        *o++ = 'n';
      } else if (c == '\r') {
        *o++ = '\\';
        *o++ = 'r';
      } else {
        memcpy(o, "\\u00", 4);
        o += 4;
        *o++ = hex[c >> 4];
        *o++ = hex[c & 15];
      }
      i++;
      continue;
    }
    int l = utf8_len(s + i, n - i);
    if (!l) {
      memcpy(o, "\\ufffd", 6);
      o += 6;
      i++;
      continue;
    }
    if (l == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
      memcpy(o, "\\u202", 5);
      o += 5;
      *o++ = s[i + 2] == 0xA8 ? '8' : '9';
      i += 3;
      continue;
    }
    memcpy(o, s + i, (size_t)l);
    o += l;
    i += (size_t)l;
  }
  *o++ = '"';
  b->len = (size_t)(o - b->p);
}

/* ---------- log writer (json-file) ---------- */
static int g_logfd = -1;
static long long g_logsize;
static struct buf g_logout;
static int g_log_on;

struct lstream {
  const char *name;
  char buf[LOG_BUF];
  size_t n;
};
static struct lstream ls_out = {"stdout", {0}, 0}, ls_err = {"stderr", {0}, 0};

static void log_open(void) {
  g_logfd = open(a_log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (g_logfd < 0) die("open log %s: %s", a_log_path, strerror(errno));
  struct stat st;
  fstat(g_logfd, &st);
  g_logsize = st.st_size;
}

static void log_flush(void) {
  if (g_logout.len && g_logfd >= 0) {
    if (write_all(g_logfd, g_logout.p, g_logout.len) < 0) logmsg("log write: %s", strerror(errno));
    else g_logsize += (long long)g_logout.len;
  }
  g_logout.len = 0;
}

/* Same scheme as moby's loggerutils: rotate before a write once the file has
   reached max-size; <log>.1 is the newest rotated file, <log>.(max-file-1)
   the oldest; max-file 1 truncates in place. */
static void log_rotate(void) {
  log_flush();
  close(g_logfd);
  size_t pl = strlen(a_log_path);
  char *from = malloc(pl + 16), *to = malloc(pl + 16);
  if (a_max_file >= 2) {
    snprintf(to, pl + 16, "%s.%d", a_log_path, a_max_file - 1);
    unlink(to);
    /* compressed rotated files (<log>.N.gz, written by berthd) shift the same way */
    snprintf(to, pl + 16, "%s.%d.gz", a_log_path, a_max_file - 1);
    unlink(to);
    for (int i = a_max_file - 1; i > 1; i--) {
      snprintf(to, pl + 16, "%s.%d", a_log_path, i);
      snprintf(from, pl + 16, "%s.%d", a_log_path, i - 1);
      rename(from, to);
      snprintf(to, pl + 16, "%s.%d.gz", a_log_path, i);
      snprintf(from, pl + 16, "%s.%d.gz", a_log_path, i - 1);
      rename(from, to);
    }
    snprintf(to, pl + 16, "%s.1", a_log_path);
    rename(a_log_path, to);
  }
  free(from);
  free(to);
  g_logfd = open(a_log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
  if (g_logfd < 0) logmsg("reopen log after rotation: %s", strerror(errno));
  g_logsize = 0;
}

/* ---------- log writer (local) ----------
   moby's `local` driver format (daemon/logger/local): each message is
   [uint32 BE size][protobuf LogEntry][uint32 BE size], LogEntry (entry.proto):
   source=1 string, time_nano=2 int64, line=3 bytes (without the "\n"),
   partial=4 bool, partial_log_metadata=5 {last=1 bool, id=2 string,
   ordinal=3 int32}. Hand-encoded: proto3 omits default values. The pieces of
   a line longer than the 16 KiB buffer share an id and count ordinals from 1;
   the piece that ends the line has last=true (the reader then appends "\n").
   Output that ends without a newline stays partial with last=false, so both
   moby and berth print it without a newline, as json-file does. */
static int g_local;
static struct buf g_attrs_pb; /* decoded --log-attrs-pb */
struct lpartial {
  char id[65];
  int ordinal; /* 0: not inside a partial line */
};
static struct lpartial lp_out, lp_err;

static void pb_varint(struct buf *b, unsigned long long v) {
  char t[10];
  size_t n = 0;
  do {
    t[n] = (char)(v & 0x7f);
    v >>= 7;
    if (v) t[n] |= (char)0x80;
    n++;
  } while (v);
  buf_add(b, t, n);
}

static void pb_bytes(struct buf *b, int field, const char *p, size_t n) {
  pb_varint(b, (unsigned long long)(field << 3 | 2));
  pb_varint(b, n);
  buf_add(b, p, n);
}

static void local_entry(const char *stream, const char *line, size_t n, int partial, const struct timespec *ts) {
  struct lpartial *pp = !strcmp(stream, "stderr") ? &lp_err : &lp_out;
  int in_partial = partial || pp->ordinal > 0;
  if (in_partial && pp->ordinal == 0) {
    static unsigned long long ctr;
    snprintf(pp->id, sizeof pp->id, "%016llx%016llx%016llx%016llx", (unsigned long long)ts->tv_sec,
             (unsigned long long)ts->tv_nsec, (unsigned long long)getpid(), ++ctr);
  }
  struct buf meta = {0};
  if (in_partial) {
    pp->ordinal++;
    if (!partial) { /* last=true */
      char t[2] = {0x08, 0x01};
      buf_add(&meta, t, 2);
    }
    pb_bytes(&meta, 2, pp->id, strlen(pp->id));
    pb_varint(&meta, 3 << 3 | 0);
    pb_varint(&meta, (unsigned long long)pp->ordinal);
  }
  size_t hdr = g_logout.len;
  char zero[4] = {0};
  buf_add(&g_logout, zero, 4);
  size_t start = g_logout.len;
  pb_bytes(&g_logout, 1, stream, strlen(stream));
  pb_varint(&g_logout, 2 << 3 | 0);
  pb_varint(&g_logout, (unsigned long long)((long long)ts->tv_sec * 1000000000LL + ts->tv_nsec));
  if (n) pb_bytes(&g_logout, 3, line, n);
  if (in_partial) {
    char t[2] = {4 << 3 | 0, 0x01};
    buf_add(&g_logout, t, 2);
    pb_bytes(&g_logout, 5, meta.p, meta.len);
  }
  free(meta.p);
  if (g_attrs_pb.len) buf_add(&g_logout, g_attrs_pb.p, g_attrs_pb.len);
  uint32_t sz = (uint32_t)(g_logout.len - start);
  unsigned char be[4] = {(unsigned char)(sz >> 24), (unsigned char)(sz >> 16), (unsigned char)(sz >> 8),
                         (unsigned char)sz};
  memcpy(g_logout.p + hdr, be, 4);
  buf_add(&g_logout, (const char *)be, 4);
  if (!partial) pp->ordinal = 0;
  if (g_logout.len >= 65536) log_flush();
}

static void log_entry(const char *stream, const char *line, size_t n, int partial) {
  if (a_max_size > 0 && g_logsize + (long long)g_logout.len >= a_max_size) log_rotate();
  if (g_local) {
    struct timespec lts;
    clock_gettime(CLOCK_REALTIME, &lts);
    local_entry(stream, line, n, partial, &lts);
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char tbuf[48];
  size_t tl = fmt_time(tbuf, &ts);
  buf_adds(&g_logout, "{");
  if (n || !partial) {
    buf_adds(&g_logout, "\"log\":");
    size_t before = g_logout.len;
    json_str(&g_logout, (const unsigned char *)line, n);
    if (!partial) { /* append the newline inside the string: replace closing quote */
      g_logout.len--;
      buf_adds(&g_logout, "\\n\"");
    }
    (void)before;
    buf_adds(&g_logout, ",");
  }
  buf_adds(&g_logout, "\"stream\":\"");
  buf_adds(&g_logout, stream);
  buf_adds(&g_logout, "\",");
  if (a_log_attrs && *a_log_attrs) {
    buf_adds(&g_logout, "\"attrs\":");
    buf_adds(&g_logout, a_log_attrs);
    buf_adds(&g_logout, ",");
  }
  buf_adds(&g_logout, "\"time\":\"");
  buf_add(&g_logout, tbuf, tl);
  buf_adds(&g_logout, "\"}\n");
  if (g_logout.len >= 65536) log_flush();
}

/* Docker's copier: complete lines are messages; a full 16 KiB buffer with no
   newline is a partial message; at EOF the rest is a partial message. */
static void log_feed(struct lstream *s, const char *d, size_t len) {
  if (!g_log_on) return;
  while (len > 0) {
    size_t take = LOG_BUF - s->n;
    if (take > len) take = len;
    memcpy(s->buf + s->n, d, take);
    s->n += take;
    d += take;
    len -= take;
    size_t p = 0;
    for (;;) {
      char *nl = memchr(s->buf + p, '\n', s->n - p);
      if (!nl) break;
      size_t q = (size_t)(nl - (s->buf + p));
      log_entry(s->name, s->buf + p, q, 0);
      p += q + 1;
    }
    if (p == 0 && s->n == LOG_BUF) {
      log_entry(s->name, s->buf, s->n, 1);
      s->n = 0;
    } else if (p > 0) {
      memmove(s->buf, s->buf + p, s->n - p);
      s->n -= p;
    }
  }
}

static void log_eof(struct lstream *s) {
  if (g_log_on && s->n) log_entry(s->name, s->buf, s->n, 1);
  s->n = 0;
}

/* ---------- state file ---------- */
static const char *status_name(void) {
  return g_status == ST_CREATED ? "created" : g_status == ST_RUNNING ? "running" : "stopped";
}

static void state_json(struct buf *b) {
  char t1[48] = "", t2[48] = "", tmp[256];
  if (g_started.tv_sec) fmt_time(t1, &g_started);
  if (g_finished.tv_sec) fmt_time(t2, &g_finished);
  snprintf(tmp, sizeof tmp,
           "{\"status\":\"%s\",\"pid\":%d,\"shimPid\":%d,\"exitCode\":%d,\"signal\":%d,\"oomKilled\":%s,"
           "\"startedAt\":\"%s\",\"finishedAt\":\"%s\"}",
           status_name(), (int)g_init_pid, (int)getpid(), g_exit_code, g_exit_signal, g_oom ? "true" : "false", t1, t2);
  buf_adds(b, tmp);
}

/* state.json is replaced atomically (tmp + rename) but not fsynced: it is read
   after berthd restarts, when the page cache still holds it; a host crash
   kills the container with it, so durability buys nothing there and cost two
   fsyncs (1-5 ms here) on each start and exit. */
static void write_state(void) {
  struct buf b = {0};
  state_json(&b);
  buf_adds(&b, "\n");
  int fd = open("state.json.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    logmsg("state.json.tmp: %s", strerror(errno));
    free(b.p);
    return;
  }
  write_all(fd, b.p, b.len);
  close(fd);
  if (rename("state.json.tmp", "state.json") < 0) logmsg("rename state.json: %s", strerror(errno));
  free(b.p);
}

/* ---------- OOM accounting ---------- */
static long long read_oom_count(void) {
  if (!g_oom_file[0]) return -1;
  FILE *f = fopen(g_oom_file, "re");
  if (!f) return -1;
  char line[256];
  long long v = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "oom_kill ", 9)) v = atoll(line + 9);
  fclose(f);
  return v;
}

static void find_oom_file(pid_t pid) {
  char path[64], line[1024];
  snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return;
  char v2[900] = "";
  int have_v2 = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *c1 = strchr(line, ':');
    if (!c1) continue;
    char *c2 = strchr(c1 + 1, ':');
    if (!c2) continue;
    *c2 = 0;
    const char *ctrls = c1 + 1, *cg = c2 + 1;
    if (!*ctrls) {
      snprintf(v2, sizeof v2, "%s", cg);
      have_v2 = 1;
      continue;
    }
    char tmp[256];
    snprintf(tmp, sizeof tmp, ",%s,", ctrls);
    if (strstr(tmp, ",memory,")) {
      snprintf(g_oom_file, sizeof g_oom_file, "/sys/fs/cgroup/memory%s/memory.oom_control", cg);
      break;
    }
  }
  fclose(f);
  if (!g_oom_file[0] && have_v2) {
    struct stat st;
    char p[600];
    snprintf(p, sizeof p, "/sys/fs/cgroup%s/memory.events", v2);
    if (stat(p, &st) == 0) snprintf(g_oom_file, sizeof g_oom_file, "%s", p);
  }
  if (g_oom_file[0]) g_oom_base = read_oom_count();
}

/* ---------- running the OCI runtime ---------- */
/* Spawns `<runtime> [runtime args] <argv...>` with stdin/stdout/stderr as given
   (-1: /dev/null). */
static pid_t spawn_runtime(const char *const *argv, int in, int out, int err) {
  const char *args[MAX_RT_ARGS + 16];
  int n = 0;
  args[n++] = a_runtime;
  for (int i = 0; i < a_nrt; i++) args[n++] = a_rt_args[i];
  for (int i = 0; argv[i] && n < MAX_RT_ARGS + 15; i++) args[n++] = argv[i];
  args[n] = NULL;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int dn = open("/dev/null", O_RDWR);
    dup2(in >= 0 ? in : dn, 0);
    dup2(out >= 0 ? out : dn, 1);
    dup2(err >= 0 ? err : dn, 2);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    execvp(a_runtime, (char *const *)args);
    dprintf(2, "exec %s: %s\n", a_runtime, strerror(errno));
    _exit(127);
  }
  return pid;
}

static size_t read_avail(int fd, char *out, size_t cap) {
  size_t n = 0;
  set_nonblock(fd);
  while (n + 1 < cap) {
    ssize_t r = read(fd, out + n, cap - 1 - n);
    if (r <= 0) break;
    n += (size_t)r;
  }
  out[n] = 0;
  while (n && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = 0;
  for (size_t i = 0; i < n; i++)
    if (out[i] == '\n') out[i] = ' ';
  return n;
}

/* receives the pty master that the runtime sends over the console socket */
static int recv_fd(int sock) {
  char data[256];
  struct iovec iov = {data, sizeof data};
  union {
    struct cmsghdr h;
    char b[CMSG_SPACE(sizeof(int))];
  } cm;
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cm.b;
  msg.msg_controllen = sizeof cm.b;
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) < 0) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

static int listen_unix(const char *path) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  unlink(path);
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind %s: %s", path, strerror(errno));
  if (listen(s, 16) < 0) die("listen: %s", strerror(errno));
  return s;
}

/* ---------- clients ---------- */
static void client_send(struct client *c, const char *p, size_t n) {
  if (c->fd < 0) return;
  if (c->outlen + n > c->outcap) {
    size_t nc = c->outcap ? c->outcap : 4096;
    while (nc < c->outlen + n) nc *= 2;
    char *np = realloc(c->out, nc);
    if (!np) die("out of memory");
    c->out = np;
    c->outcap = nc;
  }
  memcpy(c->out + c->outlen, p, n);
  c->outlen += n;
}

static void client_close(struct client *c) {
  if (c->fd < 0) return;
  close(c->fd);
  c->fd = -1;
  free(c->out);
  c->out = NULL;
  c->outlen = c->outcap = 0;
  c->inlen = 0;
}

static void reply(struct client *c, const char *reqid, int ok, const char *text) {
  struct buf b = {0};
  buf_adds(&b, reqid);
  buf_adds(&b, ok ? " ok" : " err");
  if (text && *text) {
    buf_adds(&b, " ");
    buf_adds(&b, text);
  }
  buf_adds(&b, "\n");
  client_send(c, b.p, b.len);
  free(b.p);
}

static struct client *client_by(int ci, unsigned serial) {
  if (ci < 0 || ci >= MAX_CLIENTS) return NULL;
  struct client *c = &g_cl[ci];
  return c->fd >= 0 && c->serial == serial ? c : NULL;
}

static int control_clients(void) {
  int n = 0;
  for (int i = 0; i < MAX_CLIENTS; i++)
    if (g_cl[i].fd >= 0 && !g_cl[i].attach) n++;
  return n;
}

static struct pending *pend_new(int kind, int ci, const char *reqid) {
  for (int i = 0; i < MAX_PENDING; i++)
    if (!g_pend[i].kind) {
      struct pending *p = &g_pend[i];
      memset(p, 0, sizeof *p);
      p->kind = kind;
      p->ci = ci;
      p->serial = g_cl[ci].serial;
      p->errfd = -1;
      snprintf(p->reqid, sizeof p->reqid, "%s", reqid);
      return p;
    }
  return NULL;
}

/* fan out container output to attached clients as 8-byte framed chunks */
static void fan_out(int stream, const char *d, size_t n) {
  unsigned char hdr[8] = {(unsigned char)stream, 0, 0, 0, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
  for (int i = 0; i < MAX_CLIENTS; i++) {
    struct client *c = &g_cl[i];
    if (c->fd < 0 || !c->attach) continue;
    if ((stream == 1 && !c->w_out) || (stream == 2 && !c->w_err)) continue;
    if (c->outlen + n + 8 > CLIENT_OUT_MAX) {
      logmsg("dropping attach client %d: %zu bytes behind", i, c->outlen);
      client_close(c);
      continue;
    }
    client_send(c, (const char *)hdr, 8);
    client_send(c, d, n);
  }
}

static void close_container_stdin(void) {
  if (g_stdin_closed) return;
  if (g_stdin_len) {
    g_stdin_close_pending = 1;
    return;
  }
  g_stdin_closed = 1;
  if (fd_in >= 0) {
    close(fd_in);
    fd_in = -1;
  }
  /* With a TTY there is no separate stdin to close: stdin just stops being forwarded. */
}

static void finalize(void) {
  if (g_finalized) return;
  g_finalized = 1;
  log_eof(&ls_out);
  log_eof(&ls_err);
  log_flush();
  long long oc = read_oom_count();
  if (oc > 0 && oc > (g_oom_base < 0 ? 0 : g_oom_base)) g_oom = 1;
  clock_gettime(CLOCK_REALTIME, &g_finished);
  g_status = ST_STOPPED;
  write_state();
  logmsg("container exited: code %d signal %d oom %d", g_exit_code, g_exit_signal, g_oom);
  struct buf b = {0};
  state_json(&b);
  buf_add(&b, "", 1);
  for (int i = 0; i < MAX_PENDING; i++) {
    struct pending *p = &g_pend[i];
    if (p->kind != 3) continue;
    struct client *c = client_by(p->ci, p->serial);
    if (c) reply(c, p->reqid, 1, b.p);
    p->kind = 0;
  }
  free(b.p);
  /* attached clients see the end of the stream */
  for (int i = 0; i < MAX_CLIENTS; i++)
    if (g_cl[i].fd >= 0 && g_cl[i].attach) g_cl[i].close_after_flush = 1;
}

/* ---------- commands ---------- */
static void cmd_runtime(struct client *c, int ci, const char *reqid, int kind, const char *const *argv) {
  int ep[2];
  if (pipe2(ep, O_CLOEXEC) < 0) {
    reply(c, reqid, 0, strerror(errno));
    return;
  }
  struct pending *p = pend_new(kind, ci, reqid);
  if (!p) {
    close(ep[0]);
    close(ep[1]);
    reply(c, reqid, 0, "too many pending requests");
    return;
  }
  p->pid = spawn_runtime(argv, -1, ep[1], ep[1]);
  close(ep[1]);
  p->errfd = ep[0];
  if (p->pid < 0) {
    close(ep[0]);
    p->kind = 0;
    reply(c, reqid, 0, strerror(errno));
  }
}

static void handle_line(int ci, char *line) {
  struct client *c = &g_cl[ci];
  char *save = NULL;
  char *reqid = strtok_r(line, " ", &save);
  char *cmd = strtok_r(NULL, " ", &save);
  if (!reqid) return;
  if (!cmd) {
    reply(c, reqid, 0, "missing command");
    return;
  }
  char *a1 = strtok_r(NULL, " ", &save), *a2 = strtok_r(NULL, " ", &save);
  if (!strcmp(cmd, "state")) {
    struct buf b = {0};
    state_json(&b);
    buf_add(&b, "", 1);
    reply(c, reqid, 1, b.p);
    free(b.p);
  } else if (!strcmp(cmd, "start")) {
    if (g_hold) {
      release_hold();
      reply(c, reqid, 1, NULL);
      return;
    }
    if (g_status != ST_CREATED) {
      reply(c, reqid, 0, "container is not in the created state");
      return;
    }
    for (int i = 0; i < MAX_PENDING; i++)
      if (g_pend[i].kind == 1) {
        reply(c, reqid, 0, "start already in progress");
        return;
      }
    const char *argv[] = {"start", a_id, NULL};
    cmd_runtime(c, ci, reqid, 1, argv);
  } else if (!strcmp(cmd, "kill")) {
    int sig = a1 ? atoi(a1) : SIGTERM;
    if (g_init_exited || g_init_pid <= 0) {
      reply(c, reqid, 0, "container is not running");
      return;
    }
    /* init is our child (subreaper) and not yet reaped: its pid cannot be reused */
    if (kill(g_init_pid, sig) < 0) reply(c, reqid, 0, strerror(errno));
    else reply(c, reqid, 1, NULL);
  } else if (!strcmp(cmd, "resize")) {
    if (fd_pty < 0) {
      reply(c, reqid, 0, "container has no tty");
      return;
    }
    struct winsize ws = {0};
    ws.ws_row = (unsigned short)(a1 ? atoi(a1) : 24);
    ws.ws_col = (unsigned short)(a2 ? atoi(a2) : 80);
    if (ioctl(fd_pty, TIOCSWINSZ, &ws) < 0) reply(c, reqid, 0, strerror(errno));
    else reply(c, reqid, 1, NULL);
  } else if (!strcmp(cmd, "closestdin")) {
    close_container_stdin();
    reply(c, reqid, 1, NULL);
  } else if (!strcmp(cmd, "wait")) {
    if (g_finalized) {
      struct buf b = {0};
      state_json(&b);
      buf_add(&b, "", 1);
      reply(c, reqid, 1, b.p);
      free(b.p);
    } else if (!pend_new(3, ci, reqid)) reply(c, reqid, 0, "too many pending requests");
  } else if (!strcmp(cmd, "delete")) {
    int force = a1 && !strcmp(a1, "force");
    if (g_status == ST_RUNNING && !g_finalized && !force) {
      reply(c, reqid, 0, "container is running: stop it first or delete with force");
      return;
    }
    g_exit_after_delete = 1;
    const char *argv_f[] = {"delete", "--force", a_id, NULL};
    const char *argv_n[] = {"delete", a_id, NULL};
    cmd_runtime(c, ci, reqid, 2, force || g_status == ST_CREATED ? argv_f : argv_n);
  } else if (!strcmp(cmd, "shutdown")) {
    if (!g_finalized && g_status != ST_CREATED) {
      reply(c, reqid, 0, "container is running");
      return;
    }
    reply(c, reqid, 1, NULL);
    g_exit_after_delete = 2;
  } else if (!strcmp(cmd, "attach")) {
    const char *fl = a1 ? a1 : "oe";
    c->attach = 1;
    c->w_in = strchr(fl, 'i') != NULL && a_stdin;
    c->w_out = strchr(fl, 'o') != NULL;
    c->w_err = strchr(fl, 'e') != NULL;
    reply(c, reqid, 1, NULL);
    if (g_finalized) {
      c->close_after_flush = 1;
    }
  } else {
    reply(c, reqid, 0, "unknown command");
  }
}

static void stdin_data(struct client *c, const char *d, size_t n) {
  if (!c->w_in || c->stdin_done || g_stdin_closed || g_stdin_close_pending) return;
  if (n == 0) { /* explicit end of stdin from this client */
    c->stdin_done = 1;
    if (a_stdin_once) close_container_stdin();
    return;
  }
  int target = fd_pty >= 0 ? fd_pty : fd_in;
  if (target < 0) return;
  if (g_stdin_len + n > STDIN_BUF) n = STDIN_BUF - g_stdin_len; /* cannot happen: reads are bounded */
  memcpy(g_stdin_buf + g_stdin_len, d, n);
  g_stdin_len += n;
}

/* attach stream from the client: frames [0,0,0,0,len BE][payload]; len 0 = end of stdin */
static void parse_attach_input(struct client *c) {
  size_t p = 0;
  while (c->inlen - p >= 8) {
    unsigned char *h = (unsigned char *)c->in + p;
    size_t len = ((size_t)h[4] << 24) | ((size_t)h[5] << 16) | ((size_t)h[6] << 8) | h[7];
    if (len > sizeof c->in - 8) {
      client_close(c);
      return;
    }
    if (c->inlen - p < 8 + len) break;
    if (h[0] == 0) stdin_data(c, c->in + p + 8, len);
    p += 8 + len;
  }
  memmove(c->in, c->in + p, c->inlen - p);
  c->inlen -= p;
}

static void client_readable(int ci) {
  struct client *c = &g_cl[ci];
  if (c->attach && STDIN_BUF - g_stdin_len < sizeof c->in) return; /* backpressure */
  ssize_t r = read(c->fd, c->in + c->inlen, sizeof c->in - c->inlen);
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (r <= 0) {
    if (c->attach) {
      /* the client ended its input: end of stdin from it; keep sending output
         until it hangs up completely */
      if (c->w_in && !c->stdin_done) stdin_data(c, "", 0);
      c->w_in = 0;
      if (r == 0 && !g_finalized) {
        c->attach = 2;
        c->inlen = 0;
        return;
      }
    }
    client_close(c);
    return;
  }
  c->inlen += (size_t)r;
  if (c->attach) {
    parse_attach_input(c);
    return;
  }
  for (;;) {
    char *nl = memchr(c->in, '\n', c->inlen);
    if (!nl) break;
    *nl = 0;
    size_t ll = (size_t)(nl - c->in) + 1;
    char line[8192];
    memcpy(line, c->in, ll);
    memmove(c->in, c->in + ll, c->inlen - ll);
    c->inlen -= ll;
    handle_line(ci, line);
    if (c->fd < 0 || c->attach) break;
  }
  if (c->fd >= 0 && !c->attach && c->inlen == sizeof c->in) client_close(c);
  if (c->fd >= 0 && c->attach && c->inlen) parse_attach_input(c);
}

static void client_writable(struct client *c) {
  if (!c->outlen) return;
  ssize_t w = write(c->fd, c->out, c->outlen);
  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR) client_close(c);
    return;
  }
  memmove(c->out, c->out + w, c->outlen - (size_t)w);
  c->outlen -= (size_t)w;
}

static void stdin_flush(void) {
  int t = fd_pty >= 0 ? fd_pty : fd_in;
  if (t < 0 || !g_stdin_len) return;
  ssize_t w = write(t, g_stdin_buf, g_stdin_len);
  if (w > 0) {
    memmove(g_stdin_buf, g_stdin_buf + w, g_stdin_len - (size_t)w);
    g_stdin_len -= (size_t)w;
  } else if (w < 0 && (errno == EPIPE || errno == EIO)) {
    g_stdin_len = 0;
  }
  if (!g_stdin_len && g_stdin_close_pending) {
    g_stdin_close_pending = 0;
    close_container_stdin();
  }
}

/* ---------- child reaping ---------- */
static void on_sigchld(void) {
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0) break;
    if (pid == g_init_pid) {
      g_init_exited = 1;
      clock_gettime(CLOCK_MONOTONIC, &g_exit_seen);
      if (WIFEXITED(st)) g_exit_code = WEXITSTATUS(st);
      else if (WIFSIGNALED(st)) {
        g_exit_signal = WTERMSIG(st);
        g_exit_code = 128 + g_exit_signal;
      }
      if (g_status == ST_CREATED) g_status = ST_RUNNING;
      continue;
    }
    for (int i = 0; i < MAX_PENDING; i++) {
      struct pending *p = &g_pend[i];
      if ((p->kind != 1 && p->kind != 2) || p->pid != pid) continue;
      char err[2048];
      read_avail(p->errfd, err, sizeof err);
      close(p->errfd);
      int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
      struct client *c = client_by(p->ci, p->serial);
      if (p->kind == 1 && ok) {
        clock_gettime(CLOCK_REALTIME, &g_started);
        if (!g_finalized) {
          g_status = ST_RUNNING;
          write_state();
        }
      }
      if (c) reply(c, p->reqid, ok, ok ? NULL : (err[0] ? err : "runtime failed"));
      if (p->kind == 2 && !ok) g_exit_after_delete = 0;
      else if (p->kind == 2) g_exit_after_delete = 2;
      p->kind = 0;
    }
  }
}

/* ---------- create ---------- */
static void report_and_detach(const char *msg) {
  write_all(1, msg, strlen(msg));
  int dn = open("/dev/null", O_RDWR);
  dup2(dn, 0);
  dup2(dn, 1);
  if (dn > 2) close(dn);
}

static void create_container(void) {
  int in_p[2] = {-1, -1}, out_p[2], err_p[2], rterr[2];
  int csock = -1;
  if (pipe2(rterr, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
  if (a_tty) {
    csock = listen_unix("console.sock");
  } else {
    if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
    if (a_stdin && pipe2(in_p, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
  }
  char pidfile[4096];
  snprintf(pidfile, sizeof pidfile, "%s/init.pid", a_dir);
  /* absolute: `runtime create` changes into the bundle directory before dialing
     (<exec-root>/containers/<64 hex>/console.sock stays under 108 bytes) */
  char csockpath[4096];
  snprintf(csockpath, sizeof csockpath, "%s/console.sock", a_dir);
  /* too long for sun_path: when the bundle is the state dir (berthd's layout),
     the runtime's working directory is that dir, so the relative name works */
  if (strlen(csockpath) >= 108 && strcmp(a_bundle, a_dir) == 0) snprintf(csockpath, sizeof csockpath, "console.sock");
  const char *argv_tty[] = {"create", "--bundle", a_bundle, "--pid-file", pidfile, "--console-socket", csockpath, a_id, NULL};
  const char *argv_pipe[] = {"create", "--bundle", a_bundle, "--pid-file", pidfile, a_id, NULL};
  const char *run_tty[] = {"run", "--detach", "--bundle", a_bundle, "--pid-file", pidfile, "--console-socket", csockpath, a_id, NULL};
  const char *run_pipe[] = {"run", "--detach", "--bundle", a_bundle, "--pid-file", pidfile, a_id, NULL};
  pid_t pid;
  /* While the runtime runs, the container's pipes carry only the runtime's own
     messages (init waits on the exec fifo): the runtime's stderr goes to a
     separate pipe with a TTY, else the stderr pipe is read for errors. */
  if (a_tty) pid = spawn_runtime(a_run ? run_tty : argv_tty, -1, rterr[1], rterr[1]);
  else pid = spawn_runtime(a_run ? run_pipe : argv_pipe, a_stdin ? in_p[0] : -1, out_p[1], err_p[1]);
  close(rterr[1]);
  if (pid < 0) die("fork: %s", strerror(errno));
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!a_tty) {
    close(out_p[1]);
    close(err_p[1]);
    if (a_stdin) close(in_p[0]);
  }
  char err[4096] = "";
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
    size_t n = read_avail(rterr[0], err, sizeof err);
    if (!a_tty && n == 0) n = read_avail(err_p[0], err, sizeof err);
    if (n == 0) n = read_avail(out_p[0], err, sizeof err);
    char msg[4200];
    snprintf(msg, sizeof msg, "err %s\n", err[0] ? err : "runtime create failed");
    logmsg("create failed: %s", err);
    report_and_detach(msg);
    unlink("shim.sock");
    unlink("console.sock");
    exit(1);
  }
  close(rterr[0]);
  if (a_tty) {
    set_nonblock(csock);
    int conn = accept4(csock, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) die("console socket: no connection from the runtime");
    fd_pty = recv_fd(conn);
    close(conn);
    close(csock);
    unlink("console.sock");
    if (fd_pty < 0) die("console socket: no pty master received");
    set_nonblock(fd_pty);
  } else {
    fd_out = out_p[0];
    fd_err = err_p[0];
    set_nonblock(fd_out);
    set_nonblock(fd_err);
    /* discard anything the runtime itself printed on the container's pipes
       (after `run` they may already carry the container's own output) */
    if (!a_run) {
      char junk[4096];
      if (read_avail(fd_err, junk, sizeof junk)) logmsg("runtime stderr during create: %s", junk);
      set_nonblock(fd_err);
    }
    if (a_stdin) {
      fd_in = in_p[1];
      set_nonblock(fd_in);
    }
  }
  FILE *pf = fopen(pidfile, "re");
  if (!pf || fscanf(pf, "%d", &g_init_pid) != 1) die("cannot read %s", pidfile);
  fclose(pf);
  find_oom_file(g_init_pid);
  if (a_run) {
    g_status = ST_RUNNING;
    clock_gettime(CLOCK_REALTIME, &g_started);
    clock_gettime(CLOCK_MONOTONIC, &g_hold_since);
    g_hold = 1;
  }
  write_state();
  char msg[64];
  snprintf(msg, sizeof msg, "ok %d\n", (int)g_init_pid);
  report_and_detach(msg);
}

/* ---------- exec helper (exec sessions, spawned by berthd) ----------
   berth-shim exec --id ID --process FILE --pid-file FILE [--tty --console-socket SOCK]
                   [--runtime PATH] [--runtime-arg ARG]...
   Runs `<runtime> exec --detach ...` as a child subreaper, so the exec'd
   process is reparented here and its exit status reaped here.
   TTY: relays fd 0 -> pty master -> fd 1.
   No TTY: the process gets fd 0 and fd 1 directly; its stderr goes through a
   pipe relayed to fd 2, so the runtime's own error (before the process
   exists) is told apart from the process's stderr.
   fd 3 is a socket to berthd: it reads "resize <rows> <cols>" and
   "kill <signo>" lines, and writes "started <pid>", then "exit <code>" or
   "error <message>". */
static int exec_main(const char *process, const char *csock_path, const char *pidfile) {
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  int ctl = 3;
  int ls = -1;
  if (a_tty) {
    if (!csock_path) die("--console-socket is required with --tty");
    /* unix socket paths are limited to 108 bytes: work relative to the socket's
       directory (the runtime inherits this cwd and dials the relative path) */
    const char *slash = strrchr(csock_path, '/');
    if (slash && slash != csock_path) {
      char dir[4096];
      snprintf(dir, sizeof dir, "%.*s", (int)(slash - csock_path), csock_path);
      if (chdir(dir) < 0) die("chdir %s: %s", dir, strerror(errno));
      csock_path = slash + 1;
    }
    ls = listen_unix(csock_path);
    set_nonblock(ls);
  }
  int ep[2];
  if (pipe2(ep, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
  const char *argv_tty[] = {"exec", "--detach", "--console-socket", csock_path, "--pid-file", pidfile,
                            "--process", process, a_id, NULL};
  const char *argv_pipe[] = {"exec", "--detach", "--pid-file", pidfile, "--process", process, a_id, NULL};
  pid_t rt = a_tty ? spawn_runtime(argv_tty, -1, ep[1], ep[1]) : spawn_runtime(argv_pipe, 0, 1, ep[1]);
  close(ep[1]);
  int st;
  while (waitpid(rt, &st, 0) < 0 && errno == EINTR) {
  }
  char err[4096];
  pid_t pid = 0;
  FILE *pf = fopen(pidfile, "re");
  if (pf) {
    if (fscanf(pf, "%d", &pid) != 1) pid = 0;
    fclose(pf);
  }
  unlink(pidfile);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0) || pid <= 0) {
    read_avail(ep[0], err, sizeof err);
    dprintf(ctl, "error %s\n", err[0] ? err : "runtime exec failed");
    if (csock_path) unlink(csock_path);
    return 1;
  }
  int master = -1, errp = -1;
  if (a_tty) {
    int conn = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    master = conn >= 0 ? recv_fd(conn) : -1;
    if (conn >= 0) close(conn);
    close(ls);
    unlink(csock_path);
    if (master < 0) {
      kill(pid, SIGKILL);
      dprintf(ctl, "error no console from the runtime\n");
      return 1;
    }
    set_nonblock(master);
    set_nonblock(0);
    close(ep[0]);
  } else {
    errp = ep[0];
    set_nonblock(errp);
    int dn = open("/dev/null", O_RDWR);
    dup2(dn, 0);
    dup2(dn, 1);
    close(dn);
  }
  dprintf(ctl, "started %d\n", (int)pid);
  set_nonblock(ctl);
  static char b[65536];
  char cbuf[512];
  size_t clen = 0;
  int in_open = a_tty, exited = 0, code = -1, hup = 0;
  struct timespec t0 = {0};
  for (;;) {
    struct pollfd p[4];
    p[0] = (struct pollfd){sfd, POLLIN, 0};
    p[1] = (struct pollfd){a_tty ? master : errp, hup ? 0 : POLLIN, 0};
    if (hup) p[1].fd = -1;
    p[2] = (struct pollfd){ctl, POLLIN, 0};
    p[3] = (struct pollfd){in_open ? 0 : -1, POLLIN, 0};
    int timeout = -1;
    if (exited) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
      if (hup || ms > DRAIN_MS) break;
      timeout = 20;
    }
    if (poll(p, 4, timeout) < 0 && errno != EINTR) break;
    if (p[0].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      for (;;) {
        pid_t w = waitpid(-1, &st, WNOHANG);
        if (w <= 0) break;
        if (w == pid) {
          exited = 1;
          clock_gettime(CLOCK_MONOTONIC, &t0);
          code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
      }
    }
    if (p[1].revents) {
      ssize_t r = read(p[1].fd, b, sizeof b);
      if (r > 0) write_all(a_tty ? 1 : 2, b, (size_t)r);
      else if (r == 0 || (errno != EAGAIN && errno != EINTR)) hup = 1;
    }
    if (p[2].revents) {
      ssize_t r = read(ctl, cbuf + clen, sizeof cbuf - 1 - clen);
      if (r > 0) {
        clen += (size_t)r;
        cbuf[clen] = 0;
        char *nl;
        while ((nl = memchr(cbuf, '\n', clen))) {
          *nl = 0;
          int h, w;
          if (sscanf(cbuf, "resize %d %d", &h, &w) == 2 && master >= 0) {
            struct winsize ws = {0};
            ws.ws_row = (unsigned short)h;
            ws.ws_col = (unsigned short)w;
            ioctl(master, TIOCSWINSZ, &ws);
          } else if (!strncmp(cbuf, "kill ", 5) && !exited) {
            kill(pid, atoi(cbuf + 5));
          }
          size_t ll = (size_t)(nl - cbuf) + 1;
          memmove(cbuf, cbuf + ll, clen - ll);
          clen -= ll;
        }
        if (clen >= sizeof cbuf - 1) clen = 0;
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        /* berthd went away: the session ends with it */
        if (!exited) kill(pid, SIGKILL);
        ctl = -1;
        break;
      }
    }
    if (in_open && p[3].revents) {
      ssize_t r = read(0, b, sizeof b);
      if (r > 0) {
        int fl = fcntl(master, F_GETFL);
        fcntl(master, F_SETFL, fl & ~O_NONBLOCK); /* stdin writes may block briefly */
        write_all(master, b, (size_t)r);
        fcntl(master, F_SETFL, fl);
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) in_open = 0;
    }
  }
  if (!exited) {
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  if (ctl >= 0) dprintf(ctl, "exit %d\n", code);
  return 0;
}

/* ---------- main ---------- */
static void usage(void) {
  die("usage: berth-shim --id ID --bundle DIR --state-dir DIR [--runtime PATH] [--runtime-arg ARG]... [--tty] "
      "[--stdin] [--stdin-once] [--log-driver json-file|local|none] [--log-path FILE] [--log-max-size BYTES] "
      "[--log-max-file N] [--log-attrs JSON] [--log-attrs-pb HEX]");
}

int main(int argc, char **argv) {
  int exec_mode = argc > 1 && !strcmp(argv[1], "exec");
  const char *e_process = NULL, *e_csock = NULL, *e_pidfile = NULL;
  for (int i = exec_mode ? 2 : 1; i < argc; i++) {
    const char *k = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, var)                  \
  if (!strcmp(k, name)) {               \
    if (!v) usage();                    \
    var = v;                            \
    i++;                                \
    continue;                           \
  }
    OPT("--id", a_id)
    OPT("--bundle", a_bundle)
    OPT("--state-dir", a_dir)
    OPT("--runtime", a_runtime)
    OPT("--log-driver", a_log_driver)
    OPT("--log-path", a_log_path)
    OPT("--log-attrs", a_log_attrs)
    OPT("--log-attrs-pb", a_log_attrs_pb)
    OPT("--process", e_process)
    OPT("--console-socket", e_csock)
    OPT("--pid-file", e_pidfile)
    if (!strcmp(k, "--runtime-arg") && v && a_nrt < MAX_RT_ARGS - 1) {
      a_rt_args[a_nrt++] = v;
      i++;
      continue;
    }
    if (!strcmp(k, "--log-max-size") && v) {
      a_max_size = atoll(v);
      i++;
      continue;
    }
    if (!strcmp(k, "--log-max-file") && v) {
      a_max_file = atoi(v);
      i++;
      continue;
    }
    if (!strcmp(k, "--tty")) { a_tty = 1; continue; }
    if (!strcmp(k, "--stdin")) { a_stdin = 1; continue; }
    if (!strcmp(k, "--stdin-once")) { a_stdin_once = 1; continue; }
    if (!strcmp(k, "--run")) { a_run = 1; continue; }
    if (!strcmp(k, "--version")) {
      puts("berth-shim 1");
      return 0;
    }
    usage();
  }
  if (exec_mode) {
    if (!a_id || !e_process || !e_pidfile) usage();
    return exec_main(e_process, e_csock, e_pidfile);
  }
  if (!a_id || !a_bundle || !a_dir) usage();
  g_local = !strcmp(a_log_driver, "local");
  g_log_on = g_local || !strcmp(a_log_driver, "json-file");
  if (!g_log_on && strcmp(a_log_driver, "none")) die("berth-shim: unsupported log driver %s", a_log_driver);
  if (g_log_on && !a_log_path) die("berth-shim: --log-path is required for %s", a_log_driver);
  if (a_log_attrs_pb) {
    size_t hl = strlen(a_log_attrs_pb);
    for (size_t i = 0; i + 1 < hl; i += 2) {
      unsigned int byte;
      if (sscanf(a_log_attrs_pb + i, "%2x", &byte) != 1) die("berth-shim: bad --log-attrs-pb");
      char c = (char)byte;
      buf_add(&g_attrs_pb, &c, 1);
    }
  }
  if (a_max_file < 1) a_max_file = 1;
  for (int i = 0; i < MAX_CLIENTS; i++) g_cl[i].fd = -1;

  if (chdir(a_dir) < 0) die("chdir %s: %s", a_dir, strerror(errno));
  /* detach: the first process exits at once; the daemonised child reports
     "ok <pid>" or "err <message>" on the inherited stdout, then drops it */
  pid_t f = fork();
  if (f < 0) die("fork: %s", strerror(errno));
  if (f > 0) _exit(0);
  setsid();
  int lf = open("shim.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (lf >= 0) {
    dup2(lf, 2);
    close(lf);
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  {
    char buf[32];
    int fd = open("shim.pid", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (fd >= 0) {
      write_all(fd, buf, (size_t)n);
      close(fd);
    }
  }
  if (g_log_on) log_open();
  g_listen = listen_unix("shim.sock");
  set_nonblock(g_listen);
  create_container();
  g_sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  on_sigchld(); /* anything that exited before the signalfd existed */

  static char rbuf[65536];
  for (;;) {
    struct pollfd pfd[MAX_CLIENTS + 8];
    int map[MAX_CLIENTS + 8];
    int n = 0;
    pfd[n] = (struct pollfd){g_sigfd, POLLIN, 0}, map[n++] = -1;
    pfd[n] = (struct pollfd){g_listen, POLLIN, 0}, map[n++] = -2;
    int timeout = -1;
    if (g_hold) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long ms = (now.tv_sec - g_hold_since.tv_sec) * 1000 + (now.tv_nsec - g_hold_since.tv_nsec) / 1000000;
      if (ms >= HOLD_MS) {
        logmsg("no start from berthd within %d ms: reading the container's output", HOLD_MS);
        release_hold();
      } else timeout = (int)(HOLD_MS - ms);
    }
    if (fd_out >= 0 && !g_hold) pfd[n] = (struct pollfd){fd_out, POLLIN, 0}, map[n++] = -3;
    if (fd_err >= 0 && !g_hold) pfd[n] = (struct pollfd){fd_err, POLLIN, 0}, map[n++] = -4;
    if (fd_pty >= 0 && g_pty_hup && g_init_exited) {
      close(fd_pty);
      fd_pty = -1;
    }
    if (fd_pty >= 0 && !g_pty_hup && !g_hold) pfd[n] = (struct pollfd){fd_pty, POLLIN, 0}, map[n++] = -5;
    int stdin_target = fd_pty >= 0 ? fd_pty : fd_in;
    if (g_stdin_len && stdin_target >= 0) {
      if (stdin_target == fd_pty && n > 0 && map[n - 1] == -5) pfd[n - 1].events |= POLLOUT;
      else pfd[n] = (struct pollfd){stdin_target, POLLOUT, 0}, map[n++] = -6;
    }
    for (int i = 0; i < MAX_CLIENTS; i++) {
      struct client *c = &g_cl[i];
      if (c->fd < 0) continue;
      short ev = 0;
      if (c->attach != 2 && !(c->attach && c->close_after_flush)) ev |= POLLIN;
      if (c->outlen) ev |= POLLOUT;
      pfd[n] = (struct pollfd){c->fd, ev, 0}, map[n++] = i;
    }
    if (g_init_exited && !g_finalized && !g_hold) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long ms = (now.tv_sec - g_exit_seen.tv_sec) * 1000 + (now.tv_nsec - g_exit_seen.tv_nsec) / 1000000;
      int stdio_open = fd_out >= 0 || fd_err >= 0 || fd_pty >= 0;
      if (!stdio_open || ms >= DRAIN_MS) {
        if (fd_pty >= 0) { /* drain what is left on the master */
          ssize_t r;
          while ((r = read(fd_pty, rbuf, sizeof rbuf)) > 0) {
            log_feed(&ls_out, rbuf, (size_t)r);
            fan_out(1, rbuf, (size_t)r);
          }
        }
        finalize();
        continue;
      }
      timeout = (int)(DRAIN_MS - ms);
      if (timeout > 50 && fd_pty >= 0) timeout = 50; /* a pty never reports EOF while we hold the master */
    }
    if (g_finalized) {
      int busy = 0;
      for (int i = 0; i < MAX_CLIENTS; i++)
        if (g_cl[i].fd >= 0 && g_cl[i].attach && g_cl[i].close_after_flush) {
          if (g_cl[i].outlen) busy = 1;
          else client_close(&g_cl[i]);
        }
      int pending_rt = 0;
      for (int i = 0; i < MAX_PENDING; i++)
        if (g_pend[i].kind == 2) pending_rt = 1;
      int unflushed = 0;
      for (int i = 0; i < MAX_CLIENTS; i++)
        if (g_cl[i].fd >= 0 && g_cl[i].outlen) unflushed = 1;
      if (!pending_rt && !unflushed && (g_exit_after_delete == 2 || (!control_clients() && !busy))) break;
    } else if (g_exit_after_delete == 2 && g_status == ST_CREATED) {
      int unflushed = 0;
      for (int i = 0; i < MAX_CLIENTS; i++)
        if (g_cl[i].fd >= 0 && g_cl[i].outlen) unflushed = 1;
      if (!unflushed) break;
    }
    int pr = poll(pfd, (nfds_t)n, timeout);
    if (pr < 0) {
      if (errno == EINTR) continue;
      die("poll: %s", strerror(errno));
    }
    for (int k = 0; k < n; k++) {
      short re = pfd[k].revents;
      if (!re) continue;
      int m = map[k];
      if (m == -1) {
        struct signalfd_siginfo si;
        while (read(g_sigfd, &si, sizeof si) > 0) {
        }
        on_sigchld();
      } else if (m == -2) {
        int cfd;
        while ((cfd = accept4(g_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
          int slot = -1;
          for (int i = 0; i < MAX_CLIENTS; i++)
            if (g_cl[i].fd < 0) {
              slot = i;
              break;
            }
          if (slot < 0) {
            close(cfd);
            continue;
          }
          struct client *c = &g_cl[slot];
          memset(c, 0, sizeof *c);
          c->fd = cfd;
          c->serial = ++g_serial;
        }
      } else if (m == -3 || m == -4 || (m == -5 && (re & (POLLIN | POLLHUP | POLLERR)))) {
        int *fdp = m == -3 ? &fd_out : m == -4 ? &fd_err : &fd_pty;
        ssize_t r = read(*fdp, rbuf, sizeof rbuf);
        if (r > 0) {
          struct lstream *s = m == -4 ? &ls_err : &ls_out;
          log_feed(s, rbuf, (size_t)r);
          fan_out(m == -4 ? 2 : 1, rbuf, (size_t)r);
          log_flush();
        } else if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
          /* EOF (pipe) or EIO (pty: no slave left) */
          log_eof(m == -4 ? &ls_err : &ls_out);
          log_flush();
          if (m != -5) {
            close(*fdp);
            *fdp = -1;
          } else {
            g_pty_hup = 1;
            if (g_init_exited) {
              close(fd_pty);
              fd_pty = -1;
            }
          }
        }
        if (m == -5 && fd_pty >= 0 && (re & POLLOUT)) stdin_flush();
      } else if (m == -6 || m == -5) {
        stdin_flush();
      } else if (m >= 0) {
        struct client *c = &g_cl[m];
        if (c->fd < 0) continue;
        if (re & POLLOUT) client_writable(c);
        if (c->fd >= 0 && (re & (POLLIN | POLLHUP | POLLERR))) {
          if ((re & POLLIN) || c->attach == 0) client_readable(m);
          else if (re & (POLLERR)) client_close(c);
          else if ((re & POLLHUP) && c->attach) client_close(c);
        }
      }
    }
    log_flush();
  }
  log_flush();
  unlink("shim.sock");
  logmsg("shim exiting");
  return 0;
}
