#ifndef PCN_YANG_SHIMS_H
#define PCN_YANG_SHIMS_H
/* Reading libyang's compiled schema (unions, sized arrays and macros) in plain calls for Swift. */
#include <stdint.h>
#include <libyang/libyang.h>

/* The first top-level data node of an implemented module, or NULL. */
const struct lysc_node *pcn_ly_module_data(const struct ly_ctx *ctx, const char *module);

/* The first child (data nodes of containers, lists, choices, cases; input of actions is separate). */
const struct lysc_node *pcn_ly_child(const struct lysc_node *node);

/* The first action of a container or list, or NULL; actions chain through ->next. */
const struct lysc_node *pcn_ly_actions(const struct lysc_node *node);

/* The first node of an action's input, or NULL. */
const struct lysc_node *pcn_ly_action_input(const struct lysc_node *action);

/* A leaf's or leaf-list's base type (LY_DATA_TYPE), following leafrefs not. */
int pcn_ly_basetype(const struct lysc_node *node);

/* Enumeration names of a leaf whose type is an enumeration (0 if it is not). */
uint64_t pcn_ly_enum_count(const struct lysc_node *node);
const char *pcn_ly_enum_name(const struct lysc_node *node, uint64_t index);

/* The canonical default of a leaf, or NULL. */
const char *pcn_ly_leaf_default(const struct ly_ctx *ctx, const struct lysc_node *node);

/* min-elements / max-elements of a list or leaf-list (max 0: unbounded). */
uint32_t pcn_ly_min_elements(const struct lysc_node *node);
uint32_t pcn_ly_max_elements(const struct lysc_node *node);

/* 1 if the node carries extension `name` of module `module`. */
int pcn_ly_has_extension(const struct lysc_node *node, const char *module, const char *name);

/* The argument of the node's extension `name` of module `module`, or NULL (absent or without one). */
const char *pcn_ly_extension_argument(const struct lysc_node *node, const char *module, const char *name);

/* Checks a value against a leaf's type (ranges, lengths, patterns, enums...). 0 if valid, else the
 * libyang error code; a leafref or instance-identifier that needs the tree is reported valid
 * (the whole-tree validation checks it). */
int pcn_ly_check_value(const struct ly_ctx *ctx, const struct lysc_node *node, const char *value);

/* The type of a leaf as the model writes it ("inet:ipv4-prefix", "uint16"), when the context keeps the
 * parsed schema (LY_CTX_SET_PRIV_PARSED); NULL otherwise. */
const char *pcn_ly_type_name(const struct lysc_node *node);

/* Parses RFC 7951 JSON config data strictly, validates the whole tree and prints it back with the
 * defaults filled in. Returns 0 and *out (free()) or the libyang error code (details in ly_err). */
int pcn_ly_normalize(const struct ly_ctx *ctx, const char *json, char **out);

/* The XPath expressions with which a node's validity may depend on other nodes: its must and when
 * conditions and its leafref paths (in unions too). An instance-identifier may point anywhere: it
 * counts as the expression "*". Fills `out` up to `capacity` (texts owned by libyang) and returns
 * how many there are. */
uint32_t pcn_ly_expressions(const struct lysc_node *node, const char **out, uint32_t capacity);

/* How many unique statements a list has (0 for any other node). */
uint32_t pcn_ly_unique_count(const struct lysc_node *node);

#endif
