#include "pcn_yang_shims.h"
#include <stdlib.h>
#include <string.h>

const struct lysc_node *pcn_ly_module_data(const struct ly_ctx *ctx, const char *module) {
    const struct lys_module *mod = ly_ctx_get_module_implemented(ctx, module);
    if (!mod || !mod->compiled)
        return NULL;
    return mod->compiled->data;
}

const struct lysc_node *pcn_ly_child(const struct lysc_node *node) { return lysc_node_child(node); }

const struct lysc_node *pcn_ly_actions(const struct lysc_node *node) {
    return (const struct lysc_node *)lysc_node_actions(node);
}

const struct lysc_node *pcn_ly_action_input(const struct lysc_node *action) {
    if (!action || !(action->nodetype & (LYS_ACTION | LYS_RPC)))
        return NULL;
    return ((const struct lysc_node_action *)action)->input.child;
}

static const struct lysc_type *leaf_type(const struct lysc_node *node) {
    if (node->nodetype == LYS_LEAF)
        return ((const struct lysc_node_leaf *)node)->type;
    if (node->nodetype == LYS_LEAFLIST)
        return ((const struct lysc_node_leaflist *)node)->type;
    return NULL;
}

int pcn_ly_basetype(const struct lysc_node *node) {
    const struct lysc_type *type = leaf_type(node);
    return type ? (int)type->basetype : 0;
}

uint64_t pcn_ly_enum_count(const struct lysc_node *node) {
    const struct lysc_type *type = leaf_type(node);
    if (!type || type->basetype != LY_TYPE_ENUM)
        return 0;
    return LY_ARRAY_COUNT(((const struct lysc_type_enum *)type)->enums);
}

const char *pcn_ly_enum_name(const struct lysc_node *node, uint64_t index) {
    if (index >= pcn_ly_enum_count(node))
        return NULL;
    return ((const struct lysc_type_enum *)leaf_type(node))->enums[index].name;
}

const char *pcn_ly_leaf_default(const struct ly_ctx *ctx, const struct lysc_node *node) {
    if (node->nodetype != LYS_LEAF || !((const struct lysc_node_leaf *)node)->dflt)
        return NULL;
    return lyd_value_get_canonical(ctx, ((const struct lysc_node_leaf *)node)->dflt);
}

uint32_t pcn_ly_min_elements(const struct lysc_node *node) {
    if (node->nodetype == LYS_LIST)
        return ((const struct lysc_node_list *)node)->min;
    if (node->nodetype == LYS_LEAFLIST)
        return ((const struct lysc_node_leaflist *)node)->min;
    return 0;
}

uint32_t pcn_ly_max_elements(const struct lysc_node *node) {
    uint32_t max = 0;
    if (node->nodetype == LYS_LIST)
        max = ((const struct lysc_node_list *)node)->max;
    else if (node->nodetype == LYS_LEAFLIST)
        max = ((const struct lysc_node_leaflist *)node)->max;
    return max == UINT32_MAX ? 0 : max;
}

static const struct lysc_ext_instance *find_extension(const struct lysc_node *node, const char *module, const char *name) {
    LY_ARRAY_COUNT_TYPE i;
    LY_ARRAY_FOR(node->exts, i) {
        const struct lysc_ext *def = node->exts[i].def;
        if (def && def->name && def->module && !strcmp(def->name, name) && !strcmp(def->module->name, module))
            return &node->exts[i];
    }
    return NULL;
}

int pcn_ly_has_extension(const struct lysc_node *node, const char *module, const char *name) {
    return find_extension(node, module, name) != NULL;
}

const char *pcn_ly_extension_argument(const struct lysc_node *node, const char *module, const char *name) {
    const struct lysc_ext_instance *ext = find_extension(node, module, name);
    return ext ? ext->argument : NULL;
}

int pcn_ly_check_value(const struct ly_ctx *ctx, const struct lysc_node *node, const char *value) {
    LY_ERR err = lyd_value_validate(ctx, node, value, strlen(value), NULL, NULL, NULL);
    return (err == LY_SUCCESS || err == LY_EINCOMPLETE) ? 0 : (int)err;
}


const char *pcn_ly_type_name(const struct lysc_node *node) {
    if (!node->priv || !(node->nodetype & (LYS_LEAF | LYS_LEAFLIST)))
        return NULL;
    if (node->nodetype == LYS_LEAF)
        return ((const struct lysp_node_leaf *)node->priv)->type.name;
    return ((const struct lysp_node_leaflist *)node->priv)->type.name;
}

int pcn_ly_normalize(const struct ly_ctx *ctx, const char *json, char **out) {
    struct lyd_node *tree = NULL;
    *out = NULL;
    LY_ERR err = lyd_parse_data_mem(ctx, json, LYD_JSON, LYD_PARSE_STRICT | LYD_PARSE_NO_STATE,
                                    LYD_VALIDATE_PRESENT | LYD_VALIDATE_NO_STATE, &tree);
    if (err) {
        lyd_free_all(tree);
        return (int)err;
    }
    err = lyd_print_mem(out, tree, LYD_JSON, LYD_PRINT_WITHSIBLINGS | LYD_PRINT_WD_ALL | LYD_PRINT_SHRINK);
    lyd_free_all(tree);
    if (!err && !*out)
        *out = strdup("{}");
    return (int)err;
}

static void add_expression(const char *text, const char **out, uint32_t capacity, uint32_t *count) {
    if (*count < capacity)
        out[*count] = text;
    (*count)++;
}

static void type_expressions(const struct lysc_type *type, const char **out, uint32_t capacity, uint32_t *count) {
    if (!type)
        return;
    if (type->basetype == LY_TYPE_LEAFREF) {
        add_expression(lyxp_get_expr(((const struct lysc_type_leafref *)type)->path), out, capacity, count);
    } else if (type->basetype == LY_TYPE_INST) {
        add_expression("*", out, capacity, count);
    } else if (type->basetype == LY_TYPE_UNION) {
        const struct lysc_type_union *u = (const struct lysc_type_union *)type;
        LY_ARRAY_COUNT_TYPE i;
        LY_ARRAY_FOR(u->types, i) type_expressions(u->types[i], out, capacity, count);
    }
}

uint32_t pcn_ly_expressions(const struct lysc_node *node, const char **out, uint32_t capacity) {
    uint32_t count = 0;
    LY_ARRAY_COUNT_TYPE i;
    struct lysc_must *musts = lysc_node_musts(node);
    LY_ARRAY_FOR(musts, i) add_expression(lyxp_get_expr(musts[i].cond), out, capacity, &count);
    struct lysc_when **whens = lysc_node_when(node);
    LY_ARRAY_FOR(whens, i) add_expression(lyxp_get_expr(whens[i]->cond), out, capacity, &count);
    type_expressions(leaf_type(node), out, capacity, &count);
    return count;
}

uint32_t pcn_ly_unique_count(const struct lysc_node *node) {
    if (node->nodetype != LYS_LIST)
        return 0;
    return LY_ARRAY_COUNT(((const struct lysc_node_list *)node)->uniques);
}
