/**
 * The single symbol table for libbpf and libc. Every native call belt makes
 * goes through the two libraries opened here; nothing outside `bpf/` touches
 * `Deno.dlopen`. Each parameter is commented with its C type.
 *
 * @module
 */
import { BeltError } from "./errors.ts";

const libbpfSymbols = {
  // libbpf_print_fn_t libbpf_set_print(libbpf_print_fn_t fn)
  libbpf_set_print: { parameters: ["function"], result: "pointer" },
  // int libbpf_num_possible_cpus(void)
  libbpf_num_possible_cpus: { parameters: [], result: "i32" },

  // struct bpf_object *bpf_object__open_mem(const void *buf, size_t sz, const struct bpf_object_open_opts *opts)
  bpf_object__open_mem: { parameters: ["buffer", "usize", "buffer"], result: "pointer" },
  // struct bpf_object *bpf_object__open_file(const char *path, const struct bpf_object_open_opts *opts)
  bpf_object__open_file: { parameters: ["buffer", "buffer"], result: "pointer" },
  // int bpf_object__load(struct bpf_object *obj)
  bpf_object__load: { parameters: ["pointer"], result: "i32" },
  // void bpf_object__close(struct bpf_object *obj)
  bpf_object__close: { parameters: ["pointer"], result: "void" },
  // struct bpf_program *bpf_object__next_program(const struct bpf_object *obj, struct bpf_program *prev)
  bpf_object__next_program: { parameters: ["pointer", "pointer"], result: "pointer" },
  // struct bpf_map *bpf_object__next_map(const struct bpf_object *obj, const struct bpf_map *prev)
  bpf_object__next_map: { parameters: ["pointer", "pointer"], result: "pointer" },
  // struct btf *bpf_object__btf(const struct bpf_object *obj)
  bpf_object__btf: { parameters: ["pointer"], result: "pointer" },

  // const char *bpf_program__name(const struct bpf_program *prog)
  bpf_program__name: { parameters: ["pointer"], result: "pointer" },
  // const char *bpf_program__section_name(const struct bpf_program *prog)
  bpf_program__section_name: { parameters: ["pointer"], result: "pointer" },
  // int bpf_program__fd(const struct bpf_program *prog)
  bpf_program__fd: { parameters: ["pointer"], result: "i32" },
  // enum bpf_prog_type bpf_program__type(const struct bpf_program *prog)
  bpf_program__type: { parameters: ["pointer"], result: "u32" },
  // bool bpf_program__autoload(const struct bpf_program *prog)
  bpf_program__autoload: { parameters: ["pointer"], result: "bool" },
  // int bpf_program__set_autoload(struct bpf_program *prog, bool autoload)
  bpf_program__set_autoload: { parameters: ["pointer", "bool"], result: "i32" },
  // struct bpf_link *bpf_program__attach_trace(const struct bpf_program *prog)
  bpf_program__attach_trace: { parameters: ["pointer"], result: "pointer" },
  // struct bpf_link *bpf_program__attach_raw_tracepoint(const struct bpf_program *prog, const char *tp_name)
  bpf_program__attach_raw_tracepoint: { parameters: ["pointer", "buffer"], result: "pointer" },
  // struct bpf_link *bpf_program__attach_tracepoint(const struct bpf_program *prog, const char *category, const char *name)
  bpf_program__attach_tracepoint: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "pointer",
  },
  // struct bpf_link *bpf_program__attach_kprobe(const struct bpf_program *prog, bool retprobe, const char *func_name)
  bpf_program__attach_kprobe: { parameters: ["pointer", "bool", "buffer"], result: "pointer" },

  // int bpf_link__destroy(struct bpf_link *link)
  bpf_link__destroy: { parameters: ["pointer"], result: "i32" },
  // int bpf_link__fd(const struct bpf_link *link)
  bpf_link__fd: { parameters: ["pointer"], result: "i32" },

  // const char *bpf_map__name(const struct bpf_map *map)
  bpf_map__name: { parameters: ["pointer"], result: "pointer" },
  // int bpf_map__fd(const struct bpf_map *map)
  bpf_map__fd: { parameters: ["pointer"], result: "i32" },
  // enum bpf_map_type bpf_map__type(const struct bpf_map *map)
  bpf_map__type: { parameters: ["pointer"], result: "u32" },
  // __u32 bpf_map__key_size(const struct bpf_map *map)
  bpf_map__key_size: { parameters: ["pointer"], result: "u32" },
  // __u32 bpf_map__value_size(const struct bpf_map *map)
  bpf_map__value_size: { parameters: ["pointer"], result: "u32" },
  // __u32 bpf_map__max_entries(const struct bpf_map *map)
  bpf_map__max_entries: { parameters: ["pointer"], result: "u32" },
  // int bpf_map__set_max_entries(struct bpf_map *map, __u32 max_entries)
  bpf_map__set_max_entries: { parameters: ["pointer", "u32"], result: "i32" },
  // int bpf_map__reuse_fd(struct bpf_map *map, int fd)
  bpf_map__reuse_fd: { parameters: ["pointer", "i32"], result: "i32" },
  // void *bpf_map__initial_value(struct bpf_map *map, size_t *psize)
  bpf_map__initial_value: { parameters: ["pointer", "buffer"], result: "pointer" },

  // int bpf_map_lookup_elem(int fd, const void *key, void *value)
  bpf_map_lookup_elem: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // int bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags)
  bpf_map_update_elem: { parameters: ["i32", "buffer", "buffer", "u64"], result: "i32" },
  // int bpf_map_delete_elem(int fd, const void *key)
  bpf_map_delete_elem: { parameters: ["i32", "buffer"], result: "i32" },
  // int bpf_map_get_next_key(int fd, const void *key, void *next_key)
  bpf_map_get_next_key: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, __u32 *count, const struct bpf_map_batch_opts *opts)
  bpf_map_lookup_batch: {
    parameters: ["i32", "buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  // int bpf_map_update_batch(int fd, const void *keys, const void *values, __u32 *count, const struct bpf_map_batch_opts *opts)
  bpf_map_update_batch: {
    parameters: ["i32", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  // int bpf_obj_pin(int fd, const char *pathname)
  bpf_obj_pin: { parameters: ["i32", "buffer"], result: "i32" },
  // int bpf_obj_get(const char *pathname)
  bpf_obj_get: { parameters: ["buffer"], result: "i32" },
  // int bpf_obj_get_info_by_fd(int bpf_fd, void *info, __u32 *info_len)
  bpf_obj_get_info_by_fd: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // int bpf_map_get_fd_by_id(__u32 id)
  bpf_map_get_fd_by_id: { parameters: ["u32"], result: "i32" },
  // int bpf_prog_get_fd_by_id(__u32 id)
  bpf_prog_get_fd_by_id: { parameters: ["u32"], result: "i32" },
  // int bpf_prog_test_run_opts(int prog_fd, struct bpf_test_run_opts *opts)
  bpf_prog_test_run_opts: { parameters: ["i32", "buffer"], result: "i32" },
  // int bpf_enable_stats(enum bpf_stats_type type)
  bpf_enable_stats: { parameters: ["u32"], result: "i32" },

  // int bpf_tc_hook_create(struct bpf_tc_hook *hook)
  bpf_tc_hook_create: { parameters: ["buffer"], result: "i32" },
  // int bpf_tc_hook_destroy(struct bpf_tc_hook *hook)
  bpf_tc_hook_destroy: { parameters: ["buffer"], result: "i32" },
  // int bpf_tc_attach(const struct bpf_tc_hook *hook, struct bpf_tc_opts *opts)
  bpf_tc_attach: { parameters: ["buffer", "buffer"], result: "i32" },
  // int bpf_tc_detach(const struct bpf_tc_hook *hook, const struct bpf_tc_opts *opts)
  bpf_tc_detach: { parameters: ["buffer", "buffer"], result: "i32" },
  // int bpf_tc_query(const struct bpf_tc_hook *hook, struct bpf_tc_opts *opts)
  bpf_tc_query: { parameters: ["buffer", "buffer"], result: "i32" },
  // int bpf_xdp_query(int ifindex, int flags, struct bpf_xdp_query_opts *opts)
  bpf_xdp_query: { parameters: ["i32", "i32", "buffer"], result: "i32" },

  // const struct btf_type *btf__type_by_id(const struct btf *btf, __u32 id)
  btf__type_by_id: { parameters: ["pointer", "u32"], result: "pointer" },
  // const char *btf__name_by_offset(const struct btf *btf, __u32 offset)
  btf__name_by_offset: { parameters: ["pointer", "u32"], result: "pointer" },
  // __s32 btf__find_by_name_kind(const struct btf *btf, const char *name, __u32 kind)
  btf__find_by_name_kind: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  // __s64 btf__resolve_size(const struct btf *btf, __u32 type_id)
  btf__resolve_size: { parameters: ["pointer", "u32"], result: "i64" },
  // int btf__resolve_type(const struct btf *btf, __u32 type_id)
  btf__resolve_type: { parameters: ["pointer", "u32"], result: "i32" },

  // struct perf_buffer *perf_buffer__new(int map_fd, size_t page_cnt, perf_buffer_sample_fn sample_cb, perf_buffer_lost_fn lost_cb, void *ctx, const struct perf_buffer_opts *opts)
  perf_buffer__new: {
    parameters: ["i32", "usize", "function", "function", "pointer", "pointer"],
    result: "pointer",
  },
  // int perf_buffer__epoll_fd(const struct perf_buffer *pb)
  perf_buffer__epoll_fd: { parameters: ["pointer"], result: "i32" },
  // int perf_buffer__consume(struct perf_buffer *pb)
  perf_buffer__consume: { parameters: ["pointer"], result: "i32" },
  // void perf_buffer__free(struct perf_buffer *pb)
  perf_buffer__free: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

const libcSymbols = {
  // int *__errno_location(void)
  __errno_location: { parameters: [], result: "pointer" },
  // int vsnprintf(char *str, size_t size, const char *format, va_list ap)
  vsnprintf: { parameters: ["buffer", "usize", "pointer", "pointer"], result: "i32" },
  // char *strerror(int errnum)
  strerror: { parameters: ["i32"], result: "pointer" },
  // uid_t geteuid(void)
  geteuid: { parameters: [], result: "u32" },
  // long syscall(long number, ...): used for bpf(2) commands libbpf 1.1 predates (TCX)
  syscall: { parameters: ["i64", "i64", "buffer", "u64"], result: "i64" },
  // int close(int fd)
  close: { parameters: ["i32"], result: "i32" },
  // int open(const char *path, int flags)
  open: { parameters: ["buffer", "i32"], result: "i32" },
  // int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "pointer"], result: "i32" },
  // int setns(int fd, int nstype)
  setns: { parameters: ["i32", "i32"], result: "i32" },
  // unsigned int if_nametoindex(const char *ifname)
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  // struct if_nameindex *if_nameindex(void)
  if_nameindex: { parameters: [], result: "pointer" },
  // void if_freenameindex(struct if_nameindex *ptr)
  if_freenameindex: { parameters: ["pointer"], result: "void" },
  // void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  // int munmap(void *addr, size_t length)
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  // int epoll_create1(int flags)
  epoll_create1: { parameters: ["i32"], result: "i32" },
  // int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  // int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout): off the JS thread
  epoll_wait: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  // long sysconf(int name)
  sysconf: { parameters: ["i32"], result: "i64" },
  // int clock_gettime(clockid_t clockid, struct timespec *tp)
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  // int eventfd(unsigned int initval, int flags)
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  // ssize_t write(int fd, const void *buf, size_t count)
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // ssize_t read(int fd, void *buf, size_t count)
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // int fcntl(int fd, int cmd, int arg): F_DUPFD_CLOEXEC to keep a map alive
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // int socket(int domain, int type, int protocol)
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // int bind(int sockfd, const struct sockaddr *addr, socklen_t addrlen)
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // int setsockopt(int sockfd, int level, int optname, const void *optval, socklen_t optlen)
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  // int getsockopt(int sockfd, int level, int optname, void *optval, socklen_t *optlen)
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  // ssize_t send(int sockfd, const void *buf, size_t len, int flags)
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  // ssize_t recv(int sockfd, void *buf, size_t len, int flags)
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened libbpf symbols. */
export type Libbpf = Deno.DynamicLibrary<typeof libbpfSymbols>["symbols"];
/** The opened libc symbols. */
export type Libc = Deno.DynamicLibrary<typeof libcSymbols>["symbols"];

let libbpfLib: Libbpf | undefined;
let libcLib: Libc | undefined;

/** Names tried in order when `BELT_LIBBPF` is not set. */
const LIBBPF_NAMES = ["libbpf.so.1", "libbpf.so"];

/**
 * Symbols bound on first use: Deno builds a call stub per declared symbol at
 * dlopen, and a short-lived command uses only a few of them (this halves the
 * time to open an object). The OS loads the library once either way.
 */
function lazySymbols<S extends Deno.ForeignLibraryInterface>(
  path: string,
  table: S,
): Deno.DynamicLibrary<S>["symbols"] {
  const symbols = {} as Record<string, unknown>;
  for (const name of Object.keys(table)) {
    Object.defineProperty(symbols, name, {
      configurable: true,
      enumerable: true,
      get() {
        const fn = Deno.dlopen(path, { [name]: table[name]! }).symbols[name];
        Object.defineProperty(symbols, name, { value: fn, enumerable: true });
        return fn;
      },
    });
  }
  return symbols as Deno.DynamicLibrary<S>["symbols"];
}

/** Opens libbpf once; `BELT_LIBBPF` overrides the library path. */
export function libbpf(): Libbpf {
  if (libbpfLib) return libbpfLib;
  const override = Deno.env.get("BELT_LIBBPF");
  const names = override ? [override] : LIBBPF_NAMES;
  for (const name of names) {
    try {
      // Bind one symbol now so a missing or wrong library fails here, with a clear message.
      Deno.dlopen(name, { libbpf_num_possible_cpus: libbpfSymbols.libbpf_num_possible_cpus });
      libbpfLib = lazySymbols(name, libbpfSymbols);
      return libbpfLib;
    } catch {
      // try the next name
    }
  }
  throw new BeltError(
    `cannot load libbpf (${names.join(", ")})`,
    {
      hint: "install it with `apt-get install libbpf1`, or set BELT_LIBBPF to the library's path",
    },
  );
}

/** Opens the C library once (needed for syscalls libbpf does not wrap). */
export function libc(): Libc {
  libcLib ??= lazySymbols("libc.so.6", libcSymbols);
  return libcLib;
}

/** The calling thread's errno, read right after a failed native call. */
export function errno(): number {
  const ptr = libc().__errno_location();
  return ptr ? new Deno.UnsafePointerView(ptr).getInt32() : 0;
}

/** A NUL-terminated C string for a `buffer` parameter. */
export function cstr(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text + "\0");
}

/** Reads a C string from a pointer; null gives "". */
export function readCString(ptr: Deno.PointerValue): string {
  return ptr ? Deno.UnsafePointerView.getCString(ptr) : "";
}

/** The address of a buffer, to store inside a struct passed to C. */
export function addressOf(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}
