/* downstream-torch: what a C trainer does with the installed headers only — load a Hugging Face
 * model directory, sample continuations, recompute their log-probabilities with autograd,
 * take a PPO loss on them and backpropagate into the model's parameters.
 *   downstream-torch <model dir>      (prints one line; exit 0 on success) */
#include <segrl/segrl.h>
#include <segrl/torch.h>
#include <segrl/train.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define TRY(call)                                                                   \
    do {                                                                            \
        if ((call) != SEGRL_OK) {                                                   \
            fprintf(stderr, "downstream-torch: %s: %s\n", #call, segrl_last_error()); \
            return 1;                                                               \
        }                                                                           \
    } while (0)

enum { S = 2, P = 3, L = 6 }; /* samples, prompt tokens, new tokens */

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: downstream-torch <model dir>\n");
        return 2;
    }
    segrl_model *m = NULL;
    TRY(segrl_model_load(argv[1], SEGRL_DTYPE_F32, segrl_cpu(), &m));

    /* sample S continuations of one prompt */
    const int32_t prompt[P] = {1, 2, 3};
    const int64_t offsets[2] = {0, P};
    segrl_sampling sp = segrl_sampling_default();
    sp.max_new_tokens = L;
    int32_t toks[S * L], lens[S];
    float old_lp[S * L];
    TRY(segrl_generate(m, 1, prompt, offsets, S, &sp, 42, toks, old_lp, lens, NULL));

    /* the full sequences (B = S, T = P + L), right-padded; targets are the next tokens */
    int64_t seq[S * (P + L)], tgt[S * (P + L - 1)];
    float adv[S * (P + L - 1)], mask[S * (P + L - 1)], old[S * (P + L - 1)];
    for (int s = 0; s < S; s++) {
        for (int t = 0; t < P + L; t++)
            seq[s * (P + L) + t] = t < P ? prompt[t] : (t - P < lens[s] ? toks[s * L + t - P] : 0);
        for (int t = 0; t < P + L - 1; t++) {
            const int gen = t + 1 - P; /* index of the generated token predicted at t */
            const int valid = gen >= 0 && gen < lens[s];
            tgt[s * (P + L - 1) + t] = seq[s * (P + L) + t + 1];
            mask[s * (P + L - 1) + t] = (float)valid;
            old[s * (P + L - 1) + t] = valid ? old_lp[s * L + gen] : 0.0f;
            adv[s * (P + L - 1) + t] = s == 0 ? 1.0f : -1.0f;
        }
    }
    const int64_t shape_seq[2] = {S, P + L}, shape_tok[2] = {S, P + L - 1};
    segrl_tensor *tokens = NULL, *targets = NULL, *t_adv = NULL, *t_mask = NULL, *t_old = NULL;
    TRY(segrl_tensor_from_host(seq, SEGRL_DTYPE_I64, 2, shape_seq, segrl_cpu(), &tokens));
    TRY(segrl_tensor_from_host(tgt, SEGRL_DTYPE_I64, 2, shape_tok, segrl_cpu(), &targets));
    TRY(segrl_tensor_from_host(adv, SEGRL_DTYPE_F32, 2, shape_tok, segrl_cpu(), &t_adv));
    TRY(segrl_tensor_from_host(mask, SEGRL_DTYPE_F32, 2, shape_tok, segrl_cpu(), &t_mask));
    TRY(segrl_tensor_from_host(old, SEGRL_DTYPE_F32, 2, shape_tok, segrl_cpu(), &t_old));

    /* logits of the sequences (B, T, V); the fused log-probs of the targets at positions 0..T-2
     * come from the logits of the shorter input (the last position predicts nothing) */
    const int64_t shape_in[2] = {S, P + L - 1};
    int64_t in[S * (P + L - 1)];
    for (int s = 0; s < S; s++)
        for (int t = 0; t < P + L - 1; t++) in[s * (P + L - 1) + t] = seq[s * (P + L) + t];
    segrl_tensor *t_in = NULL, *logits = NULL, *logp = NULL, *ent = NULL, *loss = NULL;
    TRY(segrl_tensor_from_host(in, SEGRL_DTYPE_I64, 2, shape_in, segrl_cpu(), &t_in));
    TRY(segrl_model_forward(m, t_in, NULL, SEGRL_OUTPUT_LOGITS, &logits));
    TRY(segrl_autograd_logprobs(logits, targets, NULL, &logp, &ent));

    /* the sampled tokens' recomputed log-probs equal the sampling-time ones (temperature 1) */
    float lp_now[S * (P + L - 1)];
    TRY(segrl_tensor_to_host(logp, lp_now, sizeof lp_now));
    double worst = 0;
    for (int i = 0; i < S * (P + L - 1); i++)
        if (mask[i] > 0) worst = fmax(worst, fabs(lp_now[i] - old[i]));
    if (worst > 1e-4) {
        fprintf(stderr, "downstream-torch: recomputed log-probs differ by %g\n", worst);
        return 1;
    }

    segrl_autograd_policy_inputs pin = {0};
    pin.logp = logp, pin.old_logp = t_old, pin.advantages = t_adv, pin.mask = t_mask;
    segrl_policy_loss_opts po = segrl_policy_loss_opts_default();
    segrl_policy_loss_stats st;
    TRY(segrl_autograd_policy_loss(&pin, &po, &loss, &st));
    double lv = 0;
    TRY(segrl_tensor_item(loss, &lv));
    TRY(segrl_tensor_backward(loss, NULL));

    /* every parameter that feeds the logits got a finite gradient, and some are non-zero */
    int64_t np = 0;
    TRY(segrl_model_parameters(m, 0, NULL, NULL, &np));
    segrl_tensor **params = calloc((size_t)np, sizeof *params);
    const char **names = calloc((size_t)np, sizeof *names);
    TRY(segrl_model_parameters(m, np, params, names, &np));
    double gsum = 0;
    for (int64_t i = 0; i < np; i++) {
        segrl_tensor *g = NULL;
        TRY(segrl_tensor_grad(params[i], &g));
        if (!g) continue;
        int64_t n = 0;
        TRY(segrl_tensor_numel(g, &n));
        float *h = malloc((size_t)n * sizeof *h);
        TRY(segrl_tensor_to_host(g, h, (size_t)n * sizeof *h));
        for (int64_t j = 0; j < n; j++) gsum += fabs(h[j]);
        free(h);
        segrl_tensor_free(g);
    }
    if (!(gsum > 0) || !isfinite(gsum)) {
        fprintf(stderr, "downstream-torch: parameter gradients sum to %g\n", gsum);
        return 1;
    }
    printf("loss %.6f over %lld tokens, ratio mean %.4f, |grad| sum %.4g, %lld parameter tensors\n",
           lv, (long long)st.num_tokens, st.ratio_mean, gsum, (long long)np);
    free(params), free(names);
    segrl_tensor_free(loss), segrl_tensor_free(ent), segrl_tensor_free(logp);
    segrl_tensor_free(logits), segrl_tensor_free(t_in), segrl_tensor_free(tokens);
    segrl_tensor_free(targets), segrl_tensor_free(t_adv), segrl_tensor_free(t_mask);
    segrl_tensor_free(t_old);
    segrl_model_free(m);
    return 0;
}
