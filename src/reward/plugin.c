/* plugin.c — rewards from shared objects: dlopen, check the exported ABI version before calling
 * anything, call the init entry point, wrap the function table it fills. */
#include "rw.h"

#include <dlfcn.h>
#include <string.h>

segrl_status segrl_reward_plugin(const char *path, const char *options_json, segrl_reward **out) {
    static const char *fn = "segrl_reward_plugin";
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    if (!path || !*path) return sg_fail(SEGRL_ERR_INVALID, "%s: path: NULL or empty", fn);
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: cannot load: %s", fn, path, e ? e : "?");
    }
    const uint32_t *abi = (const uint32_t *)dlsym(dl, SEGRL_REWARD_PLUGIN_ABI_SYMBOL);
    if (!abi) {
        dlclose(dl);
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: no symbol %s: not a segrl reward plugin", fn,
                       path, SEGRL_REWARD_PLUGIN_ABI_SYMBOL);
    }
    if (*abi != SEGRL_REWARD_ABI_VERSION) {
        uint32_t v = *abi;
        dlclose(dl);
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: %s: plugin ABI version %u, this segrl expects %u (rebuild the plugin "
                       "against this segrl's reward.h)",
                       fn, path, (unsigned)v, (unsigned)SEGRL_REWARD_ABI_VERSION);
    }
    segrl_reward_plugin_init_fn init;
    void *sym = dlsym(dl, SEGRL_REWARD_PLUGIN_INIT_SYMBOL);
    memcpy(&init, &sym, sizeof init); /* object to function pointer, as POSIX allows */
    if (!init) {
        dlclose(dl);
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: no symbol %s", fn, path,
                       SEGRL_REWARD_PLUGIN_INIT_SYMBOL);
    }
    segrl_reward_impl impl;
    memset(&impl, 0, sizeof impl);
    segrl_clear_error();
    segrl_status st = init(options_json ? options_json : "", &impl);
    if (st != SEGRL_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", segrl_last_error());
        dlclose(dl);
        return sg_fail(st, "%s: %s: init failed: %s", fn, path, msg[0] ? msg : segrl_status_str(st));
    }
    const char *bad = impl.abi_version != SEGRL_REWARD_ABI_VERSION ? "out->abi_version differs"
                      : !impl.score                                ? "out->score is NULL"
                      : (impl.flags & ~(uint32_t)SEGRL_REWARD_PER_SAMPLE) ? "out->flags has unknown bits"
                                                                   : NULL;
    if (bad) {
        if (impl.abi_version == SEGRL_REWARD_ABI_VERSION && impl.release) impl.release(impl.user);
        dlclose(dl);
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: %s", fn, path, bad);
    }
    if (!impl.name) impl.name = "plugin";
    segrl_reward *r;
    st = rw_new_owned(&impl, RW_KIND_OTHER, &r);
    if (st) {
        dlclose(dl);
        return st;
    }
    r->dl = dl;
    *out = r;
    return SEGRL_OK;
}
