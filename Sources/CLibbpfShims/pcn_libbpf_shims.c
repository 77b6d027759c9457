#include "pcn_libbpf_shims.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <limits.h>
#include <unistd.h>

/* libbpf reports through one process-wide callback; capture into the calling thread's buffer. */
static __thread char *capture_buffer;
static __thread size_t capture_size;
static __thread size_t capture_used;

static int capture_print(enum libbpf_print_level level, const char *format, va_list args) {
    if (level == LIBBPF_DEBUG || !capture_buffer || capture_used + 1 >= capture_size)
        return 0;
    int n = vsnprintf(capture_buffer + capture_used, capture_size - capture_used, format, args);
    if (n > 0)
        capture_used += (size_t)n < capture_size - capture_used ? (size_t)n : capture_size - capture_used - 1;
    return n;
}

static void capture_begin(char *log, size_t size) {
    libbpf_set_print(capture_print);
    capture_buffer = log;
    capture_size = size;
    capture_used = 0;
    if (log && size)
        log[0] = 0;
}

static void capture_end(void) {
    capture_buffer = NULL;
    capture_size = 0;
}

struct bpf_object *pcn_object_open(const char *path, const char *pin_root, char *log, size_t log_size) {
    struct bpf_object_open_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.pin_root_path = pin_root;
    capture_begin(log, log_size);
    struct bpf_object *obj = bpf_object__open_file(path, &opts);
    capture_end();
    if (libbpf_get_error(obj))
        return NULL;
    return obj;
}

int pcn_object_set_section(struct bpf_object *obj, const char *section, const void *data, size_t size) {
    struct bpf_map *map;
    size_t section_len = strlen(section);
    bpf_object__for_each_map(map, obj) {
        const char *name = bpf_map__name(map);
        size_t len = strlen(name);
        /* libbpf names the map of a custom data section (".rodata.pcn") after the section. */
        if (len >= section_len && strcmp(name + len - section_len, section) == 0) {
            size_t current = 0;
            bpf_map__initial_value(map, &current);
            if (current != size)
                return -EINVAL;
            return bpf_map__set_initial_value(map, data, size);
        }
    }
    return -ENOENT;
}

/* Maps that belong to one cube instance: not data sections, not shared pin-by-name maps. */
static int is_instance_map(struct bpf_map *map) {
    return bpf_map__name(map)[0] != '.' && !bpf_map__pin_path(map);
}

int pcn_object_instance_maps(struct bpf_object *obj, char *names, size_t size) {
    struct bpf_map *map;
    size_t used = 0;
    int count = 0;
    bpf_object__for_each_map(map, obj) {
        if (!is_instance_map(map))
            continue;
        size_t len = strlen(bpf_map__name(map)) + 1;
        if (used + len > size)
            return -ENOSPC;
        memcpy(names + used, bpf_map__name(map), len);
        used += len;
        count++;
    }
    return count;
}

int pcn_object_reuse_map(struct bpf_object *obj, const char *name, const char *path) {
    struct bpf_map *map = bpf_object__find_map_by_name(obj, name);
    if (!map)
        return -ENOENT;
    int fd = bpf_obj_get(path);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    struct bpf_map_info info = {0};
    __u32 length = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &length)) {
        int err = -errno;
        close(fd);
        return err;
    }
    /* reuse_fd would take the pinned map's definition: code built for another layout would then be
     * checked against the old one (or worse, run on it). libbpf sizes some maps itself at load
     * (a perf event array to the CPUs): a declared 0 is not compared. */
    if (info.type != bpf_map__type(map) || info.key_size != bpf_map__key_size(map) ||
        info.value_size != bpf_map__value_size(map) ||
        (bpf_map__max_entries(map) && info.max_entries != bpf_map__max_entries(map))) {
        close(fd);
        return 2;
    }
    int err = bpf_map__reuse_fd(map, fd);
    close(fd);
    return err ? err : 1;
}

int pcn_object_pin_map(struct bpf_object *obj, const char *name, const char *path) {
    struct bpf_map *map = bpf_object__find_map_by_name(obj, name);
    if (!map)
        return -ENOENT;
    if (access(path, F_OK) == 0)
        return 0;
    return bpf_obj_pin(bpf_map__fd(map), path) ? -errno : 0;
}

const void *pcn_object_section_data(struct bpf_object *obj, const char *section, size_t *size) {
    struct bpf_map *map;
    size_t section_len = strlen(section);
    bpf_object__for_each_map(map, obj) {
        const char *name = bpf_map__name(map);
        size_t len = strlen(name);
        if (len >= section_len && strcmp(name + len - section_len, section) == 0)
            return bpf_map__initial_value(map, size);
    }
    *size = 0;
    return NULL;
}

int pcn_object_load(struct bpf_object *obj, char *log, size_t log_size) {
    capture_begin(log, log_size);
    int err = bpf_object__load(obj);
    capture_end();
    return err;
}

static void make_hook(struct bpf_tc_hook *hook, int ifindex, int egress) {
    memset(hook, 0, sizeof(*hook));
    hook->sz = sizeof(*hook);
    hook->ifindex = ifindex;
    hook->attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS;
}

static void make_opts(struct bpf_tc_opts *opts, int prog_fd, unsigned int handle, unsigned int priority) {
    memset(opts, 0, sizeof(*opts));
    opts->sz = sizeof(*opts);
    opts->prog_fd = prog_fd;
    opts->handle = handle;
    opts->priority = priority;
}

int pcn_tc_attach(int ifindex, int egress, int prog_fd, unsigned int handle, unsigned int priority) {
    struct bpf_tc_hook hook;
    struct bpf_tc_opts opts;
    make_hook(&hook, ifindex, egress);
    int err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST)
        return err;
    make_opts(&opts, prog_fd, handle, priority);
    opts.flags = BPF_TC_F_REPLACE;
    return bpf_tc_attach(&hook, &opts);
}

int pcn_tc_detach(int ifindex, int egress, unsigned int handle, unsigned int priority) {
    struct bpf_tc_hook hook;
    struct bpf_tc_opts opts;
    make_hook(&hook, ifindex, egress);
    make_opts(&opts, 0, handle, priority);
    return bpf_tc_detach(&hook, &opts);
}


/* One BPF_PROG_TEST_RUN, its opts zeroed here (padding included). */
static int test_run(int prog_fd, const void *data, unsigned int size, unsigned int repeat, unsigned int batch,
                    unsigned int flags, unsigned int *retval, unsigned int *duration) {
    struct bpf_test_run_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.data_in = data;
    opts.data_size_in = size;
    opts.repeat = repeat;
    opts.batch_size = batch;
    opts.flags = flags;
    if (bpf_prog_test_run_opts(prog_fd, &opts))
        return -errno;
    if (retval)
        *retval = opts.retval;
    if (duration)
        *duration = opts.duration;
    return 0;
}

int pcn_prog_test_run(int prog_fd, const void *data, unsigned int size, int repeat,
                      unsigned int *retval, unsigned int *duration) {
    return test_run(prog_fd, data, size, (unsigned int)repeat, 0, 0, retval, duration);
}

int pcn_xdp_live_frames(int prog_fd, const void *data, unsigned int size, unsigned int repeat, unsigned int batch) {
    return test_run(prog_fd, data, size, repeat, batch, BPF_F_TEST_XDP_LIVE_FRAMES, NULL, NULL);
}

struct pcn_json {
    char *out;
    size_t size;
    size_t used;
    int overflow;
};

static void pcn_json_put(struct pcn_json *json, const char *format, ...) {
    va_list args;
    va_start(args, format);
    size_t left = json->used < json->size ? json->size - json->used : 0;
    int wrote = vsnprintf(json->out + json->used, left, format, args);
    va_end(args);
    if (wrote < 0 || (size_t)wrote >= left)
        json->overflow = 1;
    else
        json->used += (size_t)wrote;
}

static void pcn_btf_describe(const struct btf *btf, __u32 id, struct pcn_json *json, int depth) {
    const struct btf_type *t = btf__type_by_id(btf, id);
    while (t && (btf_is_typedef(t) || btf_is_const(t) || btf_is_volatile(t) || btf_is_restrict(t) || btf_is_type_tag(t))) {
        id = t->type;
        t = btf__type_by_id(btf, id);
    }
    __s64 size = btf__resolve_size(btf, id);
    if (!t || depth > 8) {
        pcn_json_put(json, "{\"kind\":\"bytes\",\"size\":%lld}", (long long)(size < 0 ? 0 : size));
        return;
    }
    if (btf_is_int(t)) {
        pcn_json_put(json, "{\"kind\":\"int\",\"size\":%u,\"signed\":%s}", t->size,
                     (btf_int_encoding(t) & BTF_INT_SIGNED) ? "true" : "false");
    } else if (btf_is_array(t)) {
        const struct btf_array *array = btf_array(t);
        pcn_json_put(json, "{\"kind\":\"array\",\"count\":%u,\"element\":", array->nelems);
        pcn_btf_describe(btf, array->type, json, depth + 1);
        pcn_json_put(json, "}");
    } else if (btf_is_composite(t)) {
        const struct btf_member *member = btf_members(t);
        pcn_json_put(json, "{\"kind\":\"%s\",\"size\":%u,\"members\":[", btf_is_union(t) ? "union" : "struct", t->size);
        for (int i = 0; i < btf_vlen(t); i++, member++) {
            const char *name = btf__name_by_offset(btf, member->name_off);
            __u32 bits = btf_member_bitfield_size(t, i), offset = btf_member_bit_offset(t, i);
            pcn_json_put(json, "%s{\"name\":\"%s\",\"offset\":%u,\"bits\":%u,\"type\":", i ? "," : "",
                         name && *name ? name : "", bits ? offset : offset / 8, bits);
            pcn_btf_describe(btf, member->type, json, depth + 1);
            pcn_json_put(json, "}");
        }
        pcn_json_put(json, "]}");
    } else if (btf_is_enum(t)) {
        const struct btf_enum *value = btf_enum(t);
        pcn_json_put(json, "{\"kind\":\"enum\",\"size\":%u,\"values\":[", t->size);
        for (int i = 0; i < btf_vlen(t); i++, value++)
            pcn_json_put(json, "%s{\"name\":\"%s\",\"value\":%d}", i ? "," : "", btf__name_by_offset(btf, value->name_off), value->val);
        pcn_json_put(json, "]}");
    } else {
        pcn_json_put(json, "{\"kind\":\"bytes\",\"size\":%lld}", (long long)(size < 0 ? 0 : size));
    }
}

int pcn_map_btf_types(int map_fd, char *key_json, size_t key_size, char *value_json, size_t value_size) {
    struct bpf_map_info info;
    __u32 length = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (bpf_obj_get_info_by_fd(map_fd, &info, &length))
        return -errno;
    if (!info.btf_id || !info.btf_value_type_id)
        return -ENOENT;
    struct btf *btf = btf__load_from_kernel_by_id(info.btf_id);
    if (!btf)
        return -errno;
    struct pcn_json key = {key_json, key_size, 0, 0}, value = {value_json, value_size, 0, 0};
    if (info.btf_key_type_id)
        pcn_btf_describe(btf, info.btf_key_type_id, &key, 0);
    else
        pcn_json_put(&key, "null");
    pcn_btf_describe(btf, info.btf_value_type_id, &value, 0);
    btf__free(btf);
    return key.overflow || value.overflow ? -ENOSPC : 0;
}
