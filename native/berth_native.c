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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <fcntl.h>
#include <unistd.h>

#define PATH_BUF 4097

static const char *errno_code(int e) {
  switch (e) {
    case EPERM: return "EPERM"; case ENOENT: return "ENOENT"; case EEXIST: return "EEXIST";
    case EACCES: return "EACCES"; case EINVAL: return "EINVAL"; case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR"; case EBUSY: return "EBUSY"; case ENOSPC: return "ENOSPC";
    case ENODATA: return "ENODATA"; case ENOTSUP: return "ENOTSUP"; case ERANGE: return "ERANGE";
    case ELOOP: return "ELOOP"; case ENAMETOOLONG: return "ENAMETOOLONG"; case EROFS: return "EROFS";
    case ENOTEMPTY: return "ENOTEMPTY"; case E2BIG: return "E2BIG"; case ENODEV: return "ENODEV";
    case EXDEV: return "EXDEV"; case EIO: return "EIO";
    default: return "EUNKNOWN";
  }
}

static napi_value throw_errno(napi_env env, int e, const char *syscall, const char *path) {
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
  napi_throw(env, err);
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
    {"crc64", NULL, js_crc64, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
