/* A program a user would write against the installed headers and library. */
#include <segrl/segrl.h>
#include <stdio.h>

int main(void) {
    float scores[4] = {1, 0, 0, 1}, tok[4 * 3], seq[4];
    int32_t group[4] = {0, 0, 1, 1};
    segrl_outcome in = {segrl_view_1d(scores, SEGRL_DTYPE_F32, segrl_cpu(), 4), segrl_view_none(),
                        segrl_view_none(), segrl_view_1d(group, SEGRL_DTYPE_I32, segrl_cpu(), 4), 2};
    size_t n = 0;
    if (segrl_workspace_size(SEGRL_OP_GRPO, segrl_cpu(), 4, 12, 2, &n)) return 1;
    static double ws[1 << 12];
    if (n > sizeof ws) return 1;
    segrl_exec exec = {NULL, ws, sizeof ws, SEGRL_CHECKS_FULL};
    segrl_status st = segrl_grpo(NULL, &in, NULL, &exec,
                                 segrl_view_2d(tok, SEGRL_DTYPE_F32, segrl_cpu(), 4, 3),
                                 segrl_view_1d(seq, SEGRL_DTYPE_F32, segrl_cpu(), 4));
    if (st != SEGRL_OK) {
        printf("segrl_grpo: %s\n", segrl_last_error());
        return 1;
    }
    /* groups {1, 0} and {0, 1}: +-0.7071 */
    if (!(seq[0] > 0.70f && seq[0] < 0.71f && seq[1] < -0.70f && seq[3] > 0.70f)) return 1;
    printf("downstream ok: segrl %s (headers %s), cuda built %d\n", segrl_version(),
           SEGRL_VERSION_STRING, segrl_built_with_cuda());
    return 0;
}
