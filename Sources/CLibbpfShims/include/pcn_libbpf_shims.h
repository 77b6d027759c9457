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

/* Before load: each map of `obj` (data sections and pin-by-name maps excepted) that has a pin
 * `<directory>/<map name>` reuses the pinned map, so tables and counters survive a program reload
 * and a restart of the loader. Returns the number reused or -errno. */
int pcn_object_reuse_pinned_maps(struct bpf_object *obj, const char *directory);

/* After load: pins those maps that are not pinned yet at `<directory>/<map name>`. 0 or -errno. */
int pcn_object_pin_maps(struct bpf_object *obj, const char *directory);

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

#endif
