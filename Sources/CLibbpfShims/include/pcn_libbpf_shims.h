#ifndef PCN_LIBBPF_SHIMS_H
#define PCN_LIBBPF_SHIMS_H
/* libbpf calls that take *_opts structs (which must be zeroed, padding included) or that report
 * through libbpf's va_list print callback: done in C, with plain arguments for Swift. */
#include <stddef.h>
#include <bpf/libbpf.h>

/* Opens an object file; maps declared LIBBPF_PIN_BY_NAME are pinned/reused under pin_root.
 * On failure returns NULL and writes libbpf's messages into log. */
struct bpf_object *pcn_object_open(const char *path, const char *pin_root, char *log, size_t log_size);

/* Sets the initial contents of the map backing data section `section` (e.g. ".rodata.pcn").
 * Returns 0, -ENOENT if the object has no such section, -EINVAL on a size mismatch. */
int pcn_object_set_section(struct bpf_object *obj, const char *section, const void *data, size_t size);

/* The names of the maps that belong to this instance (not data sections, not pin-by-name maps),
 * NUL-separated into names. Returns their number or -ENOSPC. */
int pcn_object_instance_maps(struct bpf_object *obj, char *names, size_t size);

/* Before load: map `name` reuses the map pinned at `path`. Returns 1 if reused, 0 if nothing is
 * pinned there, 2 if the pinned map has another type, key size, value size or size than the object
 * declares (not reused: the code changed the table), or -errno. */
int pcn_object_reuse_map(struct bpf_object *obj, const char *name, const char *path);

/* After load: pins map `name` at `path` unless something is pinned there already. 0 or -errno. */
int pcn_object_pin_map(struct bpf_object *obj, const char *name, const char *path);

/* The initial contents of data section `section` (e.g. ".rodata.pcn_scopes"), or NULL. */
const void *pcn_object_section_data(struct bpf_object *obj, const char *section, size_t *size);

/* Loads the object. On failure returns -errno and writes libbpf's messages, including the
 * verifier log, into log. */
int pcn_object_load(struct bpf_object *obj, char *log, size_t log_size);

/* Attaches prog_fd as a direct-action cls_bpf filter at the ingress (egress = 0) or egress hook of
 * ifindex, creating the clsact qdisc if needed and replacing the filter with the same handle and
 * priority atomically. Returns 0 or -errno. */
int pcn_tc_attach(int ifindex, int egress, int prog_fd, unsigned int handle, unsigned int priority);

/* Removes that filter. Returns 0 or -errno (-ENOENT if absent). */
int pcn_tc_detach(int ifindex, int egress, unsigned int handle, unsigned int priority);

/* BPF_PROG_TEST_RUN: runs prog_fd `repeat` times on a copy of data. *duration is the kernel's
 * average ns per run. Returns 0 or -errno. */
int pcn_prog_test_run(int prog_fd, const void *data, unsigned int size, int repeat,
                      unsigned int *retval, unsigned int *duration);

/* The key and value types of a map, from the BTF the kernel holds for it, as JSON:
 *   {"kind":"int","size":4,"signed":false}   {"kind":"array","count":4,"element":{...}}
 *   {"kind":"struct"|"union","size":8,"members":[{"name":"a","offset":0,"bits":0,"type":{...}}]}
 *   {"kind":"enum","size":4,"values":[{"name":"X","value":0}]}   {"kind":"bytes","size":N} (other kinds)
 * (typedefs and qualifiers resolved; "bits" is a bitfield's width, its "offset" then in bits).
 * Returns 0, -ENOENT when the map has no BTF, -ENOSPC when a buffer is too small, or -errno. */
int pcn_map_btf_types(int map_fd, char *key_json, size_t key_size, char *value_json, size_t value_size);

/* BPF_PROG_TEST_RUN of an XDP program in live-frames mode: `repeat` copies of data are run through
 * prog_fd `batch` at a time and what it redirects is really sent (a traffic generator). 0 or -errno. */
int pcn_xdp_live_frames(int prog_fd, const void *data, unsigned int size, unsigned int repeat, unsigned int batch);

#endif
