/* replay.c — a replay buffer of training episodes (SPO-tree edges) with an age limit in steps and
 * a per-question cap.
 *
 * Order of the buffer: newest step first; within a step, the order of the batch it came from.
 * segrl_replay_add(batch, step):
 *   1. candidates = the batch's episodes that train on at least one token (mask != 0), then the
 *      episodes already held (already in buffer order);
 *   2. drop those with step - added > max_age;
 *   3. walking the candidates in order, keep an episode only while its question holds fewer
 *      than per_question_cap episodes (0: no cap).
 * The new contents are built aside and replace the old ones only when every allocation
 * succeeded. */
#include "rollout_impl.h"

struct segrl_replay {
    int64_t max_age, cap;
    int64_t last_step; /* INT64_MIN before the first add */
    ro_batch b;        /* contents (adv always set) */
    int64_t *step;     /* (b.B) step each episode was added at */
};

segrl_status segrl_replay_init(int64_t max_age, int64_t per_question_cap, segrl_replay **out) {
    static const char fn[] = "segrl_replay_init";
    if (max_age < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: max_age: must be >= 0, got %lld", fn,
                       (long long)max_age);
    if (per_question_cap < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: per_question_cap: must be >= 0, got %lld", fn,
                       (long long)per_question_cap);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: is NULL", fn);
    segrl_replay *rb = ro_zalloc(1, sizeof *rb);
    if (!rb) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    rb->max_age = max_age;
    rb->cap = per_question_cap;
    rb->last_step = INT64_MIN;
    segrl_status st = ro_batch_alloc(&rb->b, 0, 0, fn);
    rb->b.adv = ro_zalloc(0, sizeof(float));
    rb->step = ro_zalloc(0, sizeof(int64_t));
    if (st || !rb->b.adv || !rb->step) {
        segrl_replay_free(rb);
        return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    }
    *out = rb;
    return SEGRL_OK;
}

void segrl_replay_free(segrl_replay *rb) {
    if (!rb) return;
    ro_batch_free(&rb->b);
    segrl_free(rb->step);
    segrl_free(rb);
}

static segrl_status check_batch(const char *fn, const segrl_rollout_batch *b) {
    if (!b) return sg_fail(SEGRL_ERR_INVALID, "%s: batch: is NULL", fn);
    if (b->num_seqs < 0 || b->num_tokens < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: batch->num_seqs: negative size", fn);
    if (!b->offsets) return sg_fail(SEGRL_ERR_INVALID, "%s: batch->offsets: is NULL", fn);
    if (b->num_seqs > 0) {
        const char *nul = !b->tokens ? "tokens" : !b->logprobs ? "logprobs" : !b->mask ? "mask"
                        : !b->context_len ? "context_len" : !b->rewards ? "rewards"
                        : !b->finished ? "finished" : NULL;
        if (nul) return sg_fail(SEGRL_ERR_INVALID, "%s: batch->%s: is NULL", fn, nul);
        if (!b->question && !b->prompt)
            return sg_fail(SEGRL_ERR_INVALID, "%s: batch->question: is NULL (and no prompt)", fn);
        if (!b->advantages)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: batch->advantages: is NULL (GROUP batches carry no advantages)", fn);
    }
    if (b->offsets[0] != 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: batch->offsets: offsets[0] must be 0", fn);
    for (int64_t i = 0; i < b->num_seqs; i++)
        if (b->offsets[i + 1] < b->offsets[i])
            return sg_fail(SEGRL_ERR_INVALID, "%s: batch->offsets: decreases at %lld", fn,
                           (long long)(i + 1));
    if (b->offsets[b->num_seqs] != b->num_tokens)
        return sg_fail(SEGRL_ERR_INVALID, "%s: batch->offsets: offsets[num_seqs] = %lld, "
                       "num_tokens = %lld", fn, (long long)b->offsets[b->num_seqs],
                       (long long)b->num_tokens);
    return SEGRL_OK;
}

/* One candidate episode: from the new batch (src 0) or the buffer (src 1). */
typedef struct cand {
    int src;
    int64_t i;
} cand;

segrl_status segrl_replay_add(segrl_replay *rb, const segrl_rollout_batch *batch, int64_t step) {
    static const char fn[] = "segrl_replay_add";
    if (!rb) return sg_fail(SEGRL_ERR_INVALID, "%s: rb: is NULL", fn);
    SG_TRY(check_batch(fn, batch));
    if (rb->last_step != INT64_MIN && step < rb->last_step)
        return sg_fail(SEGRL_ERR_INVALID, "%s: step: %lld is before the last step added (%lld)", fn,
                       (long long)step, (long long)rb->last_step);
    const ro_batch *old = &rb->b;
    int64_t nb = batch->num_seqs, no = old->B, nc = 0;
    cand *c = ro_zalloc(nb + no, sizeof(cand));
    int64_t *qs = ro_zalloc(nb + no, sizeof(int64_t)); /* kept questions, distinct, in order */
    int64_t *qn = ro_zalloc(nb + no, sizeof(int64_t)); /* episodes kept per distinct question */
    int64_t *gid = ro_zalloc(nb + no, sizeof(int64_t));
    int64_t *nstep = NULL;
    ro_batch nw;
    memset(&nw, 0, sizeof nw);
    segrl_status st = SEGRL_OK;
    if (!c || !qs || !qn || !gid) {
        st = sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
        goto done;
    }
    int64_t nq = 0, B = 0, N = 0;
    for (int64_t k = 0; k < nb + no; k++) {
        int src = k >= nb;
        int64_t i = src ? k - nb : k, q, len;
        if (!src) {
            int any = 0;
            for (int64_t t = batch->offsets[i]; t < batch->offsets[i + 1]; t++) any |= batch->mask[t];
            if (!any) continue;
            q = batch->question ? batch->question[i] : batch->prompt[i];
            len = batch->offsets[i + 1] - batch->offsets[i];
        } else {
            if (step - rb->step[i] > rb->max_age) continue;
            q = old->question[i];
            len = old->offsets[i + 1] - old->offsets[i];
        }
        int64_t g = 0; /* a linear search: buffers hold thousands of episodes, not millions */
        while (g < nq && qs[g] != q) g++;
        if (g == nq) {
            qs[nq] = q;
            qn[nq++] = 0;
        }
        if (rb->cap > 0 && qn[g] >= rb->cap) continue;
        qn[g]++;
        c[nc].src = src;
        c[nc].i = i;
        gid[nc] = g;
        nc++;
        B++;
        N += len;
    }
    st = ro_batch_alloc(&nw, B, N, fn);
    if (st) goto done;
    nw.adv = ro_zalloc(N, sizeof(float));
    nstep = ro_zalloc(B, sizeof(int64_t));
    if (!nw.adv || !nstep) {
        st = sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
        goto done;
    }
    /* dense group ids in order of first appearance among the kept episodes */
    int64_t *dense = qn; /* reuse: qn no longer needed */
    for (int64_t g = 0; g < nq; g++) dense[g] = -1;
    int64_t G = 0, t = 0;
    for (int64_t e = 0; e < B; e++) {
        int64_t i = c[e].i, a, len, q;
        if (dense[gid[e]] < 0) dense[gid[e]] = G++;
        nw.offsets[e] = t;
        if (c[e].src == 0) {
            a = batch->offsets[i];
            len = batch->offsets[i + 1] - a;
            q = batch->question ? batch->question[i] : batch->prompt[i];
            memcpy(nw.tokens + t, batch->tokens + a, (size_t)len * sizeof(int32_t));
            memcpy(nw.logprobs + t, batch->logprobs + a, (size_t)len * sizeof(float));
            memcpy(nw.mask + t, batch->mask + a, (size_t)len);
            memcpy(nw.adv + t, batch->advantages + a, (size_t)len * sizeof(float));
            nw.ctx[e] = batch->context_len[i];
            nw.rewards[e] = batch->rewards[i];
            nw.finished[e] = batch->finished[i];
            nstep[e] = step;
        } else {
            a = old->offsets[i];
            len = old->offsets[i + 1] - a;
            q = old->question[i];
            memcpy(nw.tokens + t, old->tokens + a, (size_t)len * sizeof(int32_t));
            memcpy(nw.logprobs + t, old->logprobs + a, (size_t)len * sizeof(float));
            memcpy(nw.mask + t, old->mask + a, (size_t)len);
            memcpy(nw.adv + t, old->adv + a, (size_t)len * sizeof(float));
            nw.ctx[e] = old->ctx[i];
            nw.rewards[e] = old->rewards[i];
            nw.finished[e] = old->finished[i];
            nstep[e] = rb->step[i];
        }
        nw.question[e] = q;
        nw.prompt[e] = dense[gid[e]];
        t += len;
    }
    nw.offsets[B] = t;
    nw.G = G;
    /* commit */
    ro_batch_free(&rb->b);
    segrl_free(rb->step);
    rb->b = nw;
    rb->step = nstep;
    rb->last_step = step;
    memset(&nw, 0, sizeof nw);
    nstep = NULL;
done:
    ro_batch_free(&nw);
    segrl_free(nstep);
    segrl_free(c);
    segrl_free(qs);
    segrl_free(qn);
    segrl_free(gid);
    return st;
}

segrl_status segrl_replay_batch_get(const segrl_replay *rb, segrl_rollout_batch *out) {
    static const char fn[] = "segrl_replay_batch_get";
    if (!rb) return sg_fail(SEGRL_ERR_INVALID, "%s: rb: is NULL", fn);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: is NULL", fn);
    ro_batch_view(&rb->b, out);
    return SEGRL_OK;
}
