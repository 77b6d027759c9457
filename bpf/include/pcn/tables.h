/* Table declarations with a scope. A table declared plainly in a cube's source (a map in
 * SEC(".maps")) belongs to the cube: every µCube and program of the cube shares it. These macros
 * declare the other scopes; pcn-core reads each table's scope from the section .rodata.pcn_scopes
 * and pins the table where that scope says:
 *
 *   PCN_TABLE_PRIVATE: this µCube alone          cubes/<cube>/private-<program>-<index>/<name>
 *   PCN_TABLE_SHARED:  every program of any cube   shared/<set>/<name>
 *                      that declares the same set
 *   PCN_TABLE_PUBLIC:  every program that declares public/<name>
 *                      it
 *
 * Programs that share a table must declare it with the same type, key, value and size (the kernel
 * refuses the program otherwise). Example:
 *     PCN_TABLE_SHARED(fdb_set, BPF_MAP_TYPE_HASH, __u64, __u32, fdb, 1024);
 */
#ifndef PCN_TABLES_H
#define PCN_TABLES_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define PCN_TABLE(type_, key_, value_, name_, entries_) \
    struct { \
        __uint(type, type_); \
        __uint(max_entries, entries_); \
        __type(key, key_); \
        __type(value, value_); \
    } name_ SEC(".maps")

#define PCN_TABLE_SCOPE(name_, scope_) \
    const char pcn_scope_##name_[] SEC(".rodata.pcn_scopes") = #name_ "=" scope_

#define PCN_TABLE_PRIVATE(type_, key_, value_, name_, entries_) \
    PCN_TABLE(type_, key_, value_, name_, entries_); \
    PCN_TABLE_SCOPE(name_, "private")

#define PCN_TABLE_SHARED(set_, type_, key_, value_, name_, entries_) \
    PCN_TABLE(type_, key_, value_, name_, entries_); \
    PCN_TABLE_SCOPE(name_, "shared:" #set_)

#define PCN_TABLE_PUBLIC(type_, key_, value_, name_, entries_) \
    PCN_TABLE(type_, key_, value_, name_, entries_); \
    PCN_TABLE_SCOPE(name_, "public")

#endif
