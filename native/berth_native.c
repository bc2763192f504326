/*
 * berth_native: the few system calls Node.js does not expose.
 *
 * Layer extraction needs mknod (device nodes, overlay whiteouts as 0:0 char
 * devices) and extended attributes (trusted.overlay.opaque, security.capability,
 * SCHILY.xattr.* from PAX headers); the overlay2 driver needs mount(2) and
 * umount2(2); tar-split needs CRC-64/ISO, which moby's tar-split records for
 * every file and checks when it reassembles a layer. Everything here is a thin,
 * synchronous wrapper: each call is one syscall (or one pass over a buffer), so
 * there is nothing to gain from the thread pool and a lot of complexity to lose.
 * Errors are thrown as Node-style errors with `code` (e.g. "EEXIST") and `errno`.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define PATH_BUF 4097

static const char *errno_code(int e) {
  switch (e) {
    case EPERM: return "EPERM"; case ENOENT: return "ENOENT"; case EEXIST: return "EEXIST";
    case EACCES: return "EACCES"; case EINVAL: return "EINVAL"; case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR"; case EBUSY: return "EBUSY"; case ENOSPC: return "ENOSPC";
    case ENODATA: return "ENODATA"; case ENOTSUP: return "ENOTSUP"; case ERANGE: return "ERANGE";
    case ELOOP: return "ELOOP"; case ENAMETOOLONG: return "ENAMETOOLONG"; case EROFS: return "EROFS";
    case ENOTEMPTY: return "ENOTEMPTY"; case E2BIG: return "E2BIG"; case ENODEV: return "ENODEV";
    case EXDEV: return "EXDEV"; case EIO: return "EIO"; case ECHILD: return "ECHILD";
    case ESRCH: return "ESRCH"; case EAGAIN: return "EAGAIN"; case ENOMEM: return "ENOMEM";
    default: return "EUNKNOWN";
  }
}

/* A Node-style error object: message "CODE: strerror, syscall 'path'", code, errno, syscall, path. */
static napi_value errno_error(napi_env env, int e, const char *syscall, const char *path) {
  char msg[PATH_BUF + 128];
  snprintf(msg, sizeof msg, "%s: %s, %s '%s'", errno_code(e), strerror(e), syscall, path ? path : "");
  napi_value m, err, code, num, sc;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &err);
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &code);
  napi_set_named_property(env, err, "code", code);
  napi_create_int32(env, -e, &num);
  napi_set_named_property(env, err, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, err, "syscall", sc);
  if (path) {
    napi_value p;
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &p);
    napi_set_named_property(env, err, "path", p);
  }
  return err;
}

static napi_value throw_errno(napi_env env, int e, const char *syscall, const char *path) {
  napi_throw(env, errno_error(env, e, syscall, path));
  return NULL;
}

static int get_str(napi_env env, napi_value v, char *buf, size_t len) {
  size_t out = 0;
  if (napi_get_value_string_utf8(env, v, buf, len, &out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a string argument");
    return -1;
  }
  if (out >= len - 1) {
    napi_throw_range_error(env, NULL, "string argument too long");
    return -1;
  }
  return 0;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* mknod(path, mode, major, minor) */
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF];
  uint32_t mode, maj, min;
  if (get_str(env, argv[0], path, sizeof path)) return NULL;
  napi_get_value_uint32(env, argv[1], &mode);
  napi_get_value_uint32(env, argv[2], &maj);
  napi_get_value_uint32(env, argv[3], &min);
  if (mknod(path, (mode_t)mode, makedev(maj, min)) != 0) return throw_errno(env, errno, "mknod", path);
  return undefined(env);
}

/* lsetxattr(path, name, value: Buffer) */
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF], name[512];
  if (get_str(env, argv[0], path, sizeof path) || get_str(env, argv[1], name, sizeof name)) return NULL;
  void *data = NULL;
  size_t len = 0;
  if (napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "value must be a Buffer");
    return NULL;
  }
  if (lsetxattr(path, name, data, len, 0) != 0) return throw_errno(env, errno, "lsetxattr", path);
  return undefined(env);
}

/* lgetxattr(path, name) -> Buffer | null (null when the attribute is absent) */
static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF], name[512];
  if (get_str(env, argv[0], path, sizeof path) || get_str(env, argv[1], name, sizeof name)) return NULL;
  for (;;) {
    ssize_t n = lgetxattr(path, name, NULL, 0);
    if (n < 0) {
      if (errno == ENODATA || errno == ENOTSUP) {
        napi_value nul;
        napi_get_null(env, &nul);
        return nul;
      }
      return throw_errno(env, errno, "lgetxattr", path);
    }
    void *out;
    napi_value buf;
    napi_create_buffer(env, (size_t)n, &out, &buf);
    ssize_t m = n ? lgetxattr(path, name, out, (size_t)n) : 0;
    if (m < 0 && errno == ERANGE) continue; /* grew in between: retry */
    if (m < 0) return throw_errno(env, errno, "lgetxattr", path);
    if (m != n) {
      napi_value sliced;
      napi_create_buffer_copy(env, (size_t)m, out, NULL, &sliced);
      return sliced;
    }
    return buf;
  }
}

/* llistxattr(path) -> string[] */
static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF];
  if (get_str(env, argv[0], path, sizeof path)) return NULL;
  napi_value arr;
  napi_create_array(env, &arr);
  for (;;) {
    ssize_t n = llistxattr(path, NULL, 0);
    if (n < 0) {
      if (errno == ENOTSUP) return arr;
      return throw_errno(env, errno, "llistxattr", path);
    }
    if (n == 0) return arr;
    char *list = malloc((size_t)n);
    if (!list) return throw_errno(env, ENOMEM, "llistxattr", path);
    ssize_t m = llistxattr(path, list, (size_t)n);
    if (m < 0) {
      int e = errno;
      free(list);
      if (e == ERANGE) continue;
      return throw_errno(env, e, "llistxattr", path);
    }
    uint32_t i = 0;
    for (ssize_t off = 0; off < m;) {
      size_t l = strlen(list + off);
      napi_value s;
      napi_create_string_utf8(env, list + off, l, &s);
      napi_set_element(env, arr, i++, s);
      off += (ssize_t)l + 1;
    }
    free(list);
    return arr;
  }
}

/* lremovexattr(path, name) -> boolean (false when it was absent) */
static napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF], name[512];
  if (get_str(env, argv[0], path, sizeof path) || get_str(env, argv[1], name, sizeof name)) return NULL;
  napi_value r;
  if (lremovexattr(path, name) != 0) {
    if (errno == ENODATA) {
      napi_get_boolean(env, false, &r);
      return r;
    }
    return throw_errno(env, errno, "lremovexattr", path);
  }
  napi_get_boolean(env, true, &r);
  return r;
}

/* mount(source, target, fstype, flags, data) */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char source[PATH_BUF], target[PATH_BUF], fstype[64];
  static char data[65536];
  uint32_t flags;
  if (get_str(env, argv[0], source, sizeof source) || get_str(env, argv[1], target, sizeof target) ||
      get_str(env, argv[2], fstype, sizeof fstype) || get_str(env, argv[4], data, sizeof data))
    return NULL;
  napi_get_value_uint32(env, argv[3], &flags);
  if (mount(source, target, fstype[0] ? fstype : NULL, flags, data[0] ? data : NULL) != 0)
    return throw_errno(env, errno, "mount", target);
  return undefined(env);
}

/* umount2(target, flags) */
static napi_value js_umount2(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char target[PATH_BUF];
  uint32_t flags;
  if (get_str(env, argv[0], target, sizeof target)) return NULL;
  napi_get_value_uint32(env, argv[1], &flags);
  if (umount2(target, (int)flags) != 0) return throw_errno(env, errno, "umount2", target);
  return undefined(env);
}

/* Queues `execute` on the thread pool and returns the promise `complete` settles. */
static napi_value queue_promise_work(napi_env env, const char *name, napi_async_execute_callback execute,
                                     napi_async_complete_callback complete, void *data, napi_async_work *work,
                                     napi_deferred *deferred) {
  napi_value promise, resource_name;
  napi_create_promise(env, deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  napi_create_async_work(env, NULL, resource_name, execute, complete, data, work);
  napi_queue_async_work(env, *work);
  return promise;
}

/* umount2Async(target, flags) -> Promise<void>
 * Unmounting an overlay syncs its upper file system (the whole of it, on the
 * kernels here), which takes milliseconds to seconds depending on what other
 * work has dirtied: done on the thread pool so the event loop keeps serving. */
struct umount_work {
  napi_async_work work;
  napi_deferred deferred;
  char target[PATH_BUF];
  int flags;
  int err;
};

static void umount_execute(napi_env env, void *data) {
  struct umount_work *w = data;
  w->err = umount2(w->target, w->flags) != 0 ? errno : 0;
}

static void umount_complete(napi_env env, napi_status status, void *data) {
  struct umount_work *w = data;
  if (w->err == 0) napi_resolve_deferred(env, w->deferred, undefined(env));
  else napi_reject_deferred(env, w->deferred, errno_error(env, w->err, "umount2", w->target));
  napi_delete_async_work(env, w->work);
  free(w);
}

static napi_value js_umount2_async(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct umount_work *w = calloc(1, sizeof *w);
  if (!w) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  uint32_t flags = 0;
  if (get_str(env, argv[0], w->target, sizeof w->target)) {
    free(w);
    return NULL;
  }
  napi_get_value_uint32(env, argv[1], &flags);
  w->flags = (int)flags;
  return queue_promise_work(env, "berth:umount2", umount_execute, umount_complete, w, &w->work, &w->deferred);
}

/* CRC-64 with the ISO polynomial (Go's crc64.MakeTable(crc64.ISO)), reflected,
 * init ~0 and final xor ~0, exactly as Go's crc64.Update. Slicing-by-8. */
static uint64_t crc_table[8][256];
static void crc64_init(void) {
  const uint64_t poly = 0xD800000000000000ULL;
  for (int i = 0; i < 256; i++) {
    uint64_t c = (uint64_t)i;
    for (int j = 0; j < 8; j++) c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
    crc_table[0][i] = c;
  }
  for (int i = 0; i < 256; i++) {
    uint64_t c = crc_table[0][i];
    for (int t = 1; t < 8; t++) {
      c = crc_table[0][c & 0xff] ^ (c >> 8);
      crc_table[t][i] = c;
    }
  }
}

/* crc64(buf, prev: bigint) -> bigint ; prev is the value returned by a previous call (0n to start) */
static napi_value js_crc64(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *p = NULL;
  size_t len = 0;
  if (napi_get_buffer_info(env, argv[0], (void **)&p, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "crc64: data must be a Buffer");
    return NULL;
  }
  uint64_t crc = 0;
  bool lossless;
  if (argc > 1) napi_get_value_bigint_uint64(env, argv[1], &crc, &lossless);
  crc = ~crc;
  while (len >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    crc ^= v; /* little-endian host */
    crc = crc_table[7][crc & 0xff] ^ crc_table[6][(crc >> 8) & 0xff] ^ crc_table[5][(crc >> 16) & 0xff] ^
          crc_table[4][(crc >> 24) & 0xff] ^ crc_table[3][(crc >> 32) & 0xff] ^ crc_table[2][(crc >> 40) & 0xff] ^
          crc_table[1][(crc >> 48) & 0xff] ^ crc_table[0][crc >> 56];
    p += 8;
    len -= 8;
  }
  while (len--) crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  napi_value r;
  napi_create_bigint_uint64(env, ~crc, &r);
  return r;
}

/* spawn(file, argv[], stdio, setsid) -> Promise<{ pid, fds }>
 *
 * Starts a program with posix_spawn: child fds 0..n-1 are /dev/null (0) or one
 * end of a new socket pair (1) whose other end is returned (close-on-exec),
 * as libuv's 'pipe' stdio. Why not child_process.spawn: libuv forks, and
 * fork() copies the page tables of the whole daemon, ~10 ms for berthd's
 * 100-150 MB on the event loop thread per container start; posix_spawn
 * (clone with CLONE_VM|CLONE_VFORK in glibc) costs the same for any size.
 * Signal dispositions and the mask are reset (Node ignores SIGPIPE, and
 * ignored signals survive exec). Node does not reap this child: call
 * waitpid(pid, true) once it has exited. */
#define MAX_SPAWN_ARGS 256
#define MAX_SPAWN_FDS 8
/* The spawn itself runs on the thread pool: with vfork semantics the calling
 * thread waits until the child has exec'd, which on a busy machine (the child
 * waiting for a CPU) took milliseconds of event-loop time per container. */
struct spawn_work {
  napi_async_work work;
  napi_deferred deferred;
  char file[PATH_BUF];
  char *args[MAX_SPAWN_ARGS + 1];
  uint32_t nargs;
  /* per child fd 0..nfds-1: 0 = /dev/null, 1 = a socket pair (the parent keeps one end) */
  uint32_t nfds;
  int kind[MAX_SPAWN_FDS];
  int parent_fd[MAX_SPAWN_FDS];
  bool setsid;
  pid_t pid;
  int err;
  const char *syscall;
};

static void spawn_execute(napi_env env, void *data) {
  struct spawn_work *w = data;
  int child_fd[MAX_SPAWN_FDS];
  for (uint32_t i = 0; i < w->nfds; i++) w->parent_fd[i] = child_fd[i] = -1;
  for (uint32_t i = 0; i < w->nfds; i++) {
    if (w->kind[i] != 1) continue;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      w->err = errno;
      w->syscall = "socketpair";
      goto fail;
    }
    w->parent_fd[i] = sv[0];
    child_fd[i] = sv[1];
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&at);
  for (uint32_t i = 0; i < w->nfds; i++) {
    if (w->kind[i] == 1) posix_spawn_file_actions_adddup2(&fa, child_fd[i], (int)i);
    else posix_spawn_file_actions_addopen(&fa, (int)i, "/dev/null", O_RDWR, 0);
  }
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setflags(&at, (short)((w->setsid ? POSIX_SPAWN_SETSID : 0) | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETSIGMASK));
  int rc = posix_spawn(&w->pid, w->file, &fa, &at, w->args, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  for (uint32_t i = 0; i < w->nfds; i++)
    if (child_fd[i] >= 0) {
      close(child_fd[i]);
      child_fd[i] = -1;
    }
  if (rc == 0) return;
  w->err = rc;
  w->syscall = "posix_spawn";
fail:
  for (uint32_t i = 0; i < w->nfds; i++) {
    if (w->parent_fd[i] >= 0) close(w->parent_fd[i]);
    if (child_fd[i] >= 0) close(child_fd[i]);
    w->parent_fd[i] = -1;
  }
}

static void spawn_complete(napi_env env, napi_status status, void *data) {
  struct spawn_work *w = data;
  if (w->err) {
    napi_reject_deferred(env, w->deferred, errno_error(env, w->err, w->syscall, w->file));
  } else {
    napi_value result, vpid, fds;
    napi_create_object(env, &result);
    napi_create_int32(env, w->pid, &vpid);
    napi_set_named_property(env, result, "pid", vpid);
    napi_create_array_with_length(env, w->nfds, &fds);
    for (uint32_t i = 0; i < w->nfds; i++) {
      napi_value v;
      napi_create_int32(env, w->parent_fd[i], &v);
      napi_set_element(env, fds, i, v);
    }
    napi_set_named_property(env, result, "fds", fds);
    napi_resolve_deferred(env, w->deferred, result);
  }
  napi_delete_async_work(env, w->work);
  for (uint32_t i = 0; i < w->nargs; i++) free(w->args[i]);
  free(w);
}

/* spawn(file, argv[], stdio: Array<0|1>, setsid) -> Promise<{ pid, fds }> */
static napi_value js_spawn(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct spawn_work *w = calloc(1, sizeof *w);
  if (!w) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (get_str(env, argv[0], w->file, sizeof w->file)) {
    free(w);
    return NULL;
  }
  uint32_t n = 0;
  if (napi_get_array_length(env, argv[1], &n) != napi_ok || n == 0 || n >= MAX_SPAWN_ARGS) {
    free(w);
    napi_throw_type_error(env, NULL, "argv must be a non-empty array of strings");
    return NULL;
  }
  if (napi_get_array_length(env, argv[2], &w->nfds) != napi_ok || w->nfds < 3 || w->nfds > MAX_SPAWN_FDS) {
    free(w);
    napi_throw_type_error(env, NULL, "stdio must be an array of 3 to 8 entries");
    return NULL;
  }
  for (uint32_t i = 0; i < w->nfds; i++) {
    napi_value el;
    int32_t k = 0;
    napi_get_element(env, argv[2], i, &el);
    napi_get_value_int32(env, el, &k);
    w->kind[i] = k == 1 ? 1 : 0;
  }
  napi_get_value_bool(env, argv[3], &w->setsid);
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    size_t len = 0;
    napi_get_element(env, argv[1], i, &el);
    if (napi_get_value_string_utf8(env, el, NULL, 0, &len) != napi_ok || !(w->args[i] = malloc(len + 1))) {
      for (uint32_t j = 0; j < i; j++) free(w->args[j]);
      free(w);
      napi_throw_type_error(env, NULL, "argv must be a non-empty array of strings");
      return NULL;
    }
    napi_get_value_string_utf8(env, el, w->args[i], len + 1, &len);
    w->nargs = i + 1;
  }
  return queue_promise_work(env, "berth:spawn", spawn_execute, spawn_complete, w, &w->work, &w->deferred);
}

/* waitpid(pid, nohang) -> null while running, else { code, signal } */
static napi_value js_waitpid(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t pid = 0;
  bool nohang = true;
  napi_get_value_int32(env, argv[0], &pid);
  if (argc > 1) napi_get_value_bool(env, argv[1], &nohang);
  if (pid <= 0) {
    napi_throw_range_error(env, NULL, "pid must be positive");
    return NULL;
  }
  int st = 0;
  pid_t r;
  do r = waitpid(pid, &st, nohang ? WNOHANG : 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, errno, "waitpid", NULL);
  napi_value out;
  if (r == 0) {
    napi_get_null(env, &out);
    return out;
  }
  napi_value code, sig;
  napi_create_object(env, &out);
  napi_create_int32(env, WIFEXITED(st) ? WEXITSTATUS(st) : -1, &code);
  napi_create_int32(env, WIFSIGNALED(st) ? WTERMSIG(st) : 0, &sig);
  napi_set_named_property(env, out, "code", code);
  napi_set_named_property(env, out, "signal", sig);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  crc64_init();
  napi_property_descriptor props[] = {
    {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_default, NULL},
    {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_default, NULL},
    {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_default, NULL},
    {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_default, NULL},
    {"lremovexattr", NULL, js_lremovexattr, NULL, NULL, NULL, napi_default, NULL},
    {"mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL},
    {"umount2", NULL, js_umount2, NULL, NULL, NULL, napi_default, NULL},
    {"umount2Async", NULL, js_umount2_async, NULL, NULL, NULL, napi_default, NULL},
    {"crc64", NULL, js_crc64, NULL, NULL, NULL, napi_default, NULL},
    {"spawn", NULL, js_spawn, NULL, NULL, NULL, napi_default, NULL},
    {"waitpid", NULL, js_waitpid, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
