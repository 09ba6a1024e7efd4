/* test-reward.c — the reward area: GSM8K and MATH verifiers on a table of answer styles
 * (equivalent forms that must match, near-misses that must not), adversarial responses (huge,
 * deeply nested, unbalanced, invalid UTF-8, empty) that must end fast, the batch scorer's threads,
 * time limits and error handling, shaping rewards and combinators against hand-computed values,
 * and by-name creation. Plugins and HTTP are in test-reward-remote.c. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <pthread.h>
#include <segrl/reward.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* scores one sample; returns the score, fills *d */
static float score1(segrl_reward *r, const char *resp, const char *ref, segrl_reward_detail *d) {
    segrl_reward_sample s = {0};
    s.response = resp;
    s.answer = ref;
    segrl_reward_run run = {1, 1, 0, 0.0f};
    float sc = -99;
    segrl_status st = segrl_reward_score(r, &s, 1, &run, &sc, d);
    CHECK(st == SEGRL_OK, "score: %s", segrl_last_error());
    return sc;
}

// ----------------------------------------------------------------------------
// GSM8K

typedef struct vcase {
    const char *resp, *ref;
    int want;
} vcase;

static const vcase GSM[] = {
    {"Natalia sold 48 clips in April and 24 in May.\n#### 72", "72", 1},
    {"She sold 48/2 = 24 clips in May.\nThe answer is 72.", "72", 1},
    {"So the total is \\boxed{72}.", "72", 1},
    {"Altogether she sold 72 clips", "72", 1},
    {"#### 72", "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", 1},
    {"#### $1,234", "1234", 1},
    {"#### $1,234.00", "1234", 1},
    {"#### 18 dollars", "18", 1},
    {"#### 18.", "18", 1},
    {"#### -5", "-5", 1},
    {"#### 5", "-5", 0},
    {"#### 0.5", "0.5", 1},
    {"#### .5", "0.5", 1},
    {"#### 3.50", "3.5", 1},
    {"#### 12.0", "12", 1},
    {"#### 012", "12", 1},
    {"#### 0", "-0", 1},
    {"#### 72\nThen I also computed 5 more.", "72", 1},
    {"The answer is 10. Later text mentions 12.", "10", 1},
    {"The answer is 10. Later text mentions 12.", "12", 0},
    {"\\boxed{12} and then 13 apples", "12", 1},
    {"I think it is 5 and then 6", "6", 1},
    {"I think it is 5 and then 6", "5", 0},
    {"no numbers here at all", "5", 0},
    {"", "5", 0},
    {"#### 1000001", "1000000", 0},
    {"#### 1000000", "1,000,000", 1},
    {"#### 5,000,000", "5000000", 1},
    {"#### 2.00001", "2", 1},
    {"#### 2.001", "2", 0},
    {"#### 5\n#### 6", "6", 1},
    {"the answer is: 42", "42", 1},
    {"THE ANSWER IS 42", "42", 1},
    {"The answer is\n42", "42", 1},
    {"It costs $18.", "18", 1},
    {"The rate is 18%", "18", 1},
    {"She has 3/4 of a pie", "0.75", 0},
    {"#### 7 apples", "7", 1},
    {"#### 7 apples", "8", 0},
    {"The answer is 1,500 meters.", "1500", 1},
    {"The answer is 1,500 meters.", "150", 0},
    {"The answer is $0.25.", ".25", 1},
    {"\\boxed{\\$45}", "45", 1},
    {"\\boxed{-3}", "-3", 1},
    {"\\boxed{-3}", "3", 0},
    {"#### 100", "10", 0},
    {"#### 99", "100", 0},
    {"#### 3.14", "3.1415", 0},
    {"We get 15 + 27 = 42 marbles.", "42", 1},
    {"We get 15 + 27 = 42 marbles.", "27", 0},
    {"####", "5", 0},
    {"#### x", "5", 0},
    {"####   \n 5", "5", 1},
    {"The answer is 8 hours and 30 minutes", "8", 1},
    {"Total: 2,400.50 dollars", "2400.5", 1},
    {"Total: 2,400.50 dollars", "2400.05", 0},
    {"It takes between 3-5 hours", "5", 1},
    {"It takes between 3-5 hours", "-5", 0},
    {"so x=-5", "-5", 1},
    {"The temperature fell to -12", "-12", 1},
};

static void test_gsm8k(void) {
    segrl_reward *r;
    CHECK(segrl_reward_gsm8k(NULL, &r) == SEGRL_OK, "gsm8k: %s", segrl_last_error());
    int n = (int)(sizeof GSM / sizeof GSM[0]);
    for (int i = 0; i < n; i++) {
        segrl_reward_detail d;
        float s = score1(r, GSM[i].resp, GSM[i].ref, &d);
        CHECK(s == (GSM[i].want ? 1.0f : 0.0f), "gsm8k[%d] \"%s\" vs \"%s\": got %g (%s, \"%s\")", i,
              GSM[i].resp, GSM[i].ref, s, segrl_reward_reason_name(d.reason), d.normalized);
    }
    /* generated styles: each value in five answer styles matches, and value + 1 does not */
    static const char *vals[] = {"0", "7", "18", "42", "100", "1234", "-17", "3.5", "0.25", "99999",
                                 "250000", "12.75", "-0.5", "64", "1000000", "8", "365", "2.5",
                                 "10", "123456789"};
    static const char *styles[] = {"Step one.\n#### %s", "The answer is %s.",
                                   "So we get \\boxed{%s}.", "Therefore she has %s left.",
                                   "Thus the answer is %s apples"};
    for (size_t v = 0; v < sizeof vals / sizeof vals[0]; v++) {
        char wrong[64];
        snprintf(wrong, sizeof wrong, "%.10g", atof(vals[v]) + 1);
        for (size_t k = 0; k < sizeof styles / sizeof styles[0]; k++) {
            char resp[128];
            snprintf(resp, sizeof resp, styles[k], vals[v]);
            segrl_reward_detail d;
            CHECK(score1(r, resp, vals[v], &d) == 1.0f, "gsm8k style %zu value %s: %s", k, vals[v],
                  segrl_reward_reason_name(d.reason));
            CHECK(score1(r, resp, wrong, &d) == 0.0f && d.reason == SEGRL_REWARD_WRONG,
                  "gsm8k style %zu value %s vs %s: must not match", k, vals[v], wrong);
        }
    }
    /* details */
    segrl_reward_detail d;
    score1(r, "so it is $1,234.50.", "1234.5", &d);
    CHECK(strcmp(d.extracted, "1,234.50") == 0 && strcmp(d.normalized, "1234.5") == 0 &&
              d.reason == SEGRL_REWARD_OK,
          "gsm8k detail: \"%s\" \"%s\"", d.extracted, d.normalized);
    /* detail texts are valid UTF-8: invalid bytes become '?', long texts end in "..." */
    score1(r, "#### 5\xff\xfe", "5", &d);
    CHECK(strcmp(d.extracted, "5") == 0, "utf8: \"%s\"", d.extracted);
    char longnum[400];
    for (int i = 0; i < 300; i++) longnum[i] = (char)('1' + i % 9);
    longnum[300] = '\0';
    score1(r, longnum, longnum, &d);
    CHECK(strlen(d.extracted) == SEGRL_REWARD_TEXT_MAX - 1 &&
              strcmp(d.extracted + SEGRL_REWARD_TEXT_MAX - 4, "...") == 0 && d.reason == SEGRL_REWARD_OK,
          "long extracted: %zu \"%s\"", strlen(d.extracted), d.extracted);
    score1(r, "", "5", &d);
    CHECK(d.reason == SEGRL_REWARD_EMPTY_RESPONSE, "empty: %s", segrl_reward_reason_name(d.reason));
    score1(r, "nothing", "5", &d);
    CHECK(d.reason == SEGRL_REWARD_NO_ANSWER, "no answer: %s", segrl_reward_reason_name(d.reason));
    score1(r, "5", "", &d);
    CHECK(d.reason == SEGRL_REWARD_BAD_REFERENCE, "bad ref: %s", segrl_reward_reason_name(d.reason));
    /* hundreds of digits compare exactly */
    char big[400], big2[400], resp[420];
    for (int i = 0; i < 300; i++) big[i] = big2[i] = (char)('1' + i % 9);
    big[300] = big2[300] = '\0';
    big2[299] = big2[299] == '9' ? '8' : (char)(big2[299] + 1);
    snprintf(resp, sizeof resp, "#### %s", big);
    CHECK(score1(r, resp, big, &d) == 1.0f, "300 digits equal");
    CHECK(score1(r, resp, big2, &d) == 0.0f, "300 digits, last differs");
    segrl_reward_free(r);

    /* the SPO / VinePPO multiple-#### penalty */
    segrl_gsm8k_opts o = segrl_gsm8k_defaults();
    o.multi_answer_penalty = 1;
    o.multi_answer_score = -0.5f;
    CHECK(segrl_reward_gsm8k(&o, &r) == SEGRL_OK, "gsm8k penalty");
    CHECK(score1(r, "#### 5\n#### 6", "6", &d) == -0.5f && d.reason == SEGRL_REWARD_MULTIPLE_ANSWERS,
          "two ####: %s", segrl_reward_reason_name(d.reason));
    CHECK(score1(r, "#### 6", "6", &d) == 1.0f, "one ####");
    segrl_reward_free(r);
    o = segrl_gsm8k_defaults();
    o.tolerance = -1;
    CHECK(segrl_reward_gsm8k(&o, &r) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "opts->tolerance"),
          "bad tolerance: %s", segrl_last_error());
}

// ----------------------------------------------------------------------------
// MATH: answer equivalence

typedef struct eqcase {
    const char *a, *b;
    int eq;
} eqcase;

static const eqcase MEQ[] = {
    /* fractions, decimals */
    {"\\frac{1}{2}", "0.5", 1},
    {"\\dfrac{1}{2}", "\\frac12", 1},
    {"\\tfrac{3}{4}", "3/4", 1},
    {"1/2", "\\frac{1}{2}", 1},
    {"\\frac{2}{4}", "\\frac{1}{2}", 1},
    {"\\frac{-1}{2}", "-0.5", 1},
    {"\\dfrac{-1}{2}", "-\\frac{1}{2}", 1},
    {"-\\frac12", "-0.5", 1},
    {"\\frac{3}{2}", "1.5", 1},
    {"0.5", ".5", 1},
    {"6.0", "6", 1},
    {"-0", "0", 1},
    {"0.333333333333", "\\frac{1}{3}", 1},
    {"\\frac{1}{2}", "\\frac{1}{3}", 0},
    {"0.5", "0.6", 0},
    {"0.333", "\\frac{1}{3}", 0},
    {"\\frac{1}{2}", "\\frac{2}{1}", 0},
    {"-\\frac{1}{2}", "\\frac{1}{2}", 0},
    /* mixed numbers */
    {"3\\frac{1}{2}", "3.5", 1},
    {"3\\frac{1}{2}", "\\frac{7}{2}", 1},
    {"3 1/2", "7/2", 1},
    {"3 \\frac{2}{5}", "3.4", 1},
    {"-2\\frac{1}{4}", "-2.25", 1},
    {"3\\frac{1}{2}", "3", 0},
    {"3\\frac{1}{2}", "1.5", 0},
    /* roots, pi */
    {"\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}", 1},
    {"2\\sqrt{2}", "\\sqrt{8}", 1},
    {"\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", 1},
    {"\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", 1},
    {"4\\sqrt{3}", "\\sqrt{48}", 1},
    {"\\frac{5\\sqrt{2}}{2}", "\\frac{5}{\\sqrt{2}}", 1},
    {"\\sqrt[3]{8}", "2", 1},
    {"\\sqrt{2}\\cdot\\sqrt{2}", "2", 1},
    {"\\pi", "3.14159265358979", 1},
    {"2\\pi", "6.283185307179586", 1},
    {"\\frac{\\pi}{2}", "\\pi/2", 1},
    {"\\frac{\\pi}{2}", "\\frac12\\pi", 1},
    {"2\\sqrt{2}", "\\sqrt{2}", 0},
    {"\\sqrt{3}", "3", 0},
    {"\\pi", "3.14", 0},
    {"2\\pi", "\\pi", 0},
    {"\\sqrt[3]{8}", "\\sqrt{8}", 0},
    /* powers, scientific notation */
    {"10^{3}", "1000", 1},
    {"2^{-1}", "0.5", 1},
    {"1.5e3", "1500", 1},
    {"1.5\\times10^{3}", "1500", 1},
    {"1.5 \\cdot 10^3", "1500", 1},
    {"2^{10}", "1024", 1},
    {"10^{3}", "10^{4}", 0},
    {"1.5e3", "1.5e4", 0},
    {"10^{1000}", "10^{999}", 0},
    {"1e400", "1e401", 0},
    /* integers exactly */
    {"1000", "1001", 0},
    {"5", "-5", 0},
    {"123456789012345678901234567890", "123456789012345678901234567890", 1},
    {"123456789012345678901234567890", "123456789012345678901234567891", 0},
    {"007", "7", 1},
    /* thousands separators */
    {"1,000", "1000", 1},
    {"1{,}000", "1000", 1},
    {"\\$1,\\!000", "1000", 1},
    {"12,345,678", "12345678", 1},
    {"1,000", "100", 0},
    /* prefixes, units, decorations */
    {"x = 5", "5", 1},
    {"y=\\frac{1}{2}", "0.5", 1},
    {"k = 7", "7", 1},
    {"5^\\circ", "5", 1},
    {"30^{\\circ}", "30", 1},
    {"90^\\circ", "90", 1},
    {"50\\%", "50", 1},
    {"2.5\\%", "2.5", 1},
    {"\\$5.00", "5", 1},
    {"5\\text{ cm}", "5", 1},
    {"12 \\text{ square units}", "12", 1},
    {"10 \\mbox{ inches}", "10", 1},
    {"10\\text{ dollars}", "10", 1},
    {"4 \\text{ hours}", "4", 1},
    {"12 square units", "12", 1},
    {"5 cm", "5", 1},
    {"45 degrees", "45", 1},
    {"5.", "5", 1},
    {"5\\!", "5", 1},
    {"\\boxed{7}", "7", 1},
    {"{7}", "7", 1},
    {"{{7}}", "7", 1},
    {"\\displaystyle\\frac{1}{4}", "0.25", 1},
    {"50\\%", "0.5", 0},
    {"5\\text{ cm}", "6", 0},
    {"5\\text{ cm}^2", "5", 1},
    {"5\\text{ m}^{3}", "5", 1},
    {"5 cm^2", "5", 1},
    {"5^2", "5", 0},
    {"5\\text{ cm}^2", "25", 0},
    {"2m", "2", 0},
    {"2x", "2", 0},
    {"5\\text{ or }6", "5", 0},
    {"x = 5", "6", 0},
    /* text answers and choices */
    {"\\text{(A)}", "A", 1},
    {"(B)", "B", 1},
    {"\\textbf{(C)}", "C", 1},
    {"\\text{Monday}", "Monday", 1},
    {"\\text{ Monday }", "Monday", 1},
    {"A", "B", 0},
    {"(A)", "(B)", 0},
    {"\\text{Tuesday}", "\\text{Monday}", 0},
    /* tuples and intervals: ordered, brackets matter */
    {"\\left(1,2\\right)", "(1,2)", 1},
    {"(1, 2)", "(1,2)", 1},
    {"(1,\\frac{1}{2})", "(1,0.5)", 1},
    {"(0, \\frac{1}{2})", "(0,0.5)", 1},
    {"(3,-1)", "\\left( 3, -1 \\right)", 1},
    {"[1,2)", "[1, 2)", 1},
    {"(-\\infty, 3]", "(-\\infty,3]", 1},
    {"\\left[ 0, 1 \\right]", "[0,1]", 1},
    {"(x, y) = (1, 2)", "(1,2)", 0},
    {"(1,2)", "[1,2)", 0},
    {"(1,2)", "(2,1)", 0},
    {"[1,2]", "[1,2)", 0},
    {"(1,2,3)", "(1,2)", 0},
    {"(-\\infty,3]", "(\\infty,3]", 0},
    {"x\\in[2,5]", "[2,5]", 1},
    {"(-\\infty,-2)\\cup(3,\\infty)", "(-\\infty, -2) \\cup (3, \\infty)", 1},
    {"(-\\infty,-2)\\cup(3,\\infty)", "(-\\infty, -2) \\cup [3, \\infty)", 0},
    /* sets and lists: unordered */
    {"\\{1,2,3\\}", "\\{3,2,1\\}", 1},
    {"\\{-1, 1\\}", "\\{1,-1\\}", 1},
    {"\\{\\frac12, 2\\}", "\\{2, 0.5\\}", 1},
    {"1, 2, 3", "3,1,2", 1},
    {"x = 1, 2", "2, 1", 1},
    {"x=2 \\text{ or } x=-3", "2,-3", 1},
    {"1 \\text{and} 4", "4, 1", 1},
    {"x=2 \\text{ or } x=-3", "2,3", 0},
    {"\\{1,2\\}", "\\{1,3\\}", 0},
    {"\\{1,2\\}", "\\{1,2,3\\}", 0},
    {"\\{1,1\\}", "\\{1,2\\}", 0},
    {"1,2", "1,2,3", 0},
    {"12", "1,2", 0},
    /* matrices */
    {"\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", 1},
    {"\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}", "\\begin{pmatrix}1 & 0 \\\\ 0 & 1.0\\end{pmatrix}", 1},
    {"\\begin{pmatrix}\\frac12\\\\-1\\end{pmatrix}", "\\begin{pmatrix}0.5\\\\-1\\end{pmatrix}", 1},
    {"\\begin{bmatrix}2&3\\end{bmatrix}", "\\begin{pmatrix}2&3\\end{pmatrix}", 1},
    {"\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}2\\\\1\\end{pmatrix}", 0},
    {"\\begin{pmatrix}1&2\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", 0},
    {"\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}", 0},
    /* expressions compared as strings after normalization */
    {"x+1", "x + 1", 1},
    {"x^2+2x+1", "x^2 + 2x + 1", 1},
    {"\\left(x+1\\right)^2", "(x+1)^2", 1},
    {"x+1", "x-1", 0},
    {"x^2", "x^3", 0},
    {"2", "2x", 0},
    {"\\frac{1}{2}x", "\\frac{1}{2}", 0},
    /* infinity */
    {"\\infty", "\\infty", 1},
    {"-\\infty", "-\\infty", 1},
    {"\\infty", "-\\infty", 0},
    /* empty */
    {"", "5", 0},
    {"5", "", 0},
};

static void test_math_equivalence(void) {
    int n = (int)(sizeof MEQ / sizeof MEQ[0]);
    for (int i = 0; i < n; i++) {
        int eq = -1;
        segrl_status st = segrl_math_equivalent(MEQ[i].a, MEQ[i].b, 0, &eq);
        char na[256] = "", nb[256] = "";
        segrl_math_normalize(MEQ[i].a, na, sizeof na);
        segrl_math_normalize(MEQ[i].b, nb, sizeof nb);
        CHECK(st == SEGRL_OK && eq == MEQ[i].eq, "math eq[%d] \"%s\" vs \"%s\": got %d want %d (\"%s\" / \"%s\")",
              i, MEQ[i].a, MEQ[i].b, eq, MEQ[i].eq, na, nb);
        /* symmetric */
        st = segrl_math_equivalent(MEQ[i].b, MEQ[i].a, 0, &eq);
        CHECK(st == SEGRL_OK && eq == MEQ[i].eq, "math eq[%d] reversed: got %d", i, eq);
        /* normalization is stable on well-formed answers */
        char n2[256];
        segrl_math_normalize(na, n2, sizeof n2);
        CHECK(strcmp(na, n2) == 0, "normalize twice: \"%s\" -> \"%s\" -> \"%s\"", MEQ[i].a, na, n2);
    }
    char buf[64];
    CHECK(segrl_math_normalize("\\left( \\dfrac{1}{2} \\right)", buf, sizeof buf) == SEGRL_OK &&
              strcmp(buf, "(\\frac{1}{2})") == 0,
          "normalize: \"%s\"", buf);
    CHECK(segrl_math_normalize("x = \\frac12.", buf, sizeof buf) == SEGRL_OK &&
              strcmp(buf, "\\frac{1}{2}") == 0,
          "normalize: \"%s\"", buf);
    int eq;
    CHECK(segrl_math_equivalent("1", "1", NAN, &eq) == SEGRL_ERR_INVALID, "NaN tolerance");
    CHECK(segrl_math_equivalent("1", "1", 0, NULL) == SEGRL_ERR_INVALID, "NULL out");
}

// ----------------------------------------------------------------------------
// MATH: whole responses

static const vcase MRESP[] = {
    {"The answer is \\boxed{\\frac{1}{2}}.", "\\frac12", 1},
    {"First \\boxed{1}, then corrected: \\boxed{2}", "2", 1},
    {"First \\boxed{1}, then corrected: \\boxed{2}", "1", 0},
    {"\\fbox{5}", "5", 1},
    {"Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}", 1},
    {"Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{1}{4}", 0},
    {"So the final answer is 12.", "12", 1},
    {"so the final answer is x = 3\nDone", "3", 1},
    {"We conclude with 42", "42", 1},
    {"so the probability is 3/4", "\\frac34", 1},
    {"\\boxed{5", "5", 1},
    {"\\boxed{5}}}}", "5", 1},
    {"\\boxed{{{{5}}}}", "5", 1},
    {"\\boxed 5", "5", 1},
    {"\\boxed{x = 3}", "3", 1},
    {"$\\boxed{(1,2)}$", "(1,2)", 1},
    {"$\\boxed{(1,2)}$", "(2,1)", 0},
    {"\\boxed{7}", "The area is 49 so the side is \\boxed{7}.", 1},
    {"I don't know", "5", 0},
    {"", "5", 0},
    {"\\boxed{\\dfrac{\\sqrt{3}}{2}}", "\\frac{\\sqrt 3}{2}", 1},
    {"\\boxed{\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}}", "\\begin{pmatrix}1\\\\-2\\end{pmatrix}", 1},
    {"\\boxed{\\{1, 2\\}}", "\\{2,1\\}", 1},
    {"\\boxed{[-1, 4)}", "[-1,4)", 1},
    {"\\boxed{[-1, 4)}", "[-1,4]", 0},
    {"\\boxed{30^\\circ}", "30", 1},
    {"\\boxed{\\text{(D)}}", "D", 1},
    {"\\boxed{\\$12.50}", "12.5", 1},
    {"\\boxed{1{,}234}", "1234", 1},
    {"\\boxed{2\\sqrt{5}}", "\\sqrt{20}", 1},
    {"\\boxed{2\\sqrt{5}}", "\\sqrt{10}", 0},
};

static void test_math_responses(void) {
    segrl_reward *r;
    CHECK(segrl_reward_math(NULL, &r) == SEGRL_OK, "math: %s", segrl_last_error());
    int n = (int)(sizeof MRESP / sizeof MRESP[0]);
    for (int i = 0; i < n; i++) {
        segrl_reward_detail d;
        float s = score1(r, MRESP[i].resp, MRESP[i].ref, &d);
        CHECK(s == (MRESP[i].want ? 1.0f : 0.0f), "math[%d] \"%s\" vs \"%s\": got %g (%s, \"%s\" -> \"%s\")",
              i, MRESP[i].resp, MRESP[i].ref, s, segrl_reward_reason_name(d.reason), d.extracted,
              d.normalized);
    }
    segrl_reward_detail d;
    score1(r, "so \\boxed{\\dfrac{1}{2}}", "0.5", &d);
    CHECK(strcmp(d.extracted, "\\dfrac{1}{2}") == 0 && strcmp(d.normalized, "\\frac{1}{2}") == 0,
          "math detail: \"%s\" \"%s\"", d.extracted, d.normalized);
    score1(r, "no digits", "5", &d);
    CHECK(d.reason == SEGRL_REWARD_NO_ANSWER, "no answer: %s", segrl_reward_reason_name(d.reason));
    /* invalid UTF-8 and a multi-byte character cut by the length limit */
    score1(r, "\\boxed{\xc3(\xff\xe2\x82\xac}", "5", &d);
    CHECK(strcmp(d.extracted, "?(?\xe2\x82\xac") == 0, "utf8 extracted: \"%s\"", d.extracted);
    char euros[700] = "\\boxed{";
    for (int i = 0; i < 200; i++) strcat(euros, "\xe2\x82\xac");
    strcat(euros, "}");
    score1(r, euros, "5", &d);
    size_t el = strlen(d.extracted);
    CHECK(el <= SEGRL_REWARD_TEXT_MAX - 1 && el >= 6 && strcmp(d.extracted + el - 3, "...") == 0 &&
              (el - 3) % 3 == 0, "cut at a character: %zu", el);
    segrl_reward_free(r);
}

// ----------------------------------------------------------------------------
// adversarial responses: bounded time, no crash

static void adversarial(segrl_reward *g, segrl_reward *m) {
    const size_t N = 1000000;
    char *buf = h_alloc(N + 64);
    struct {
        const char *what;
        void (*fill)(char *, size_t);
    } cases[8];
    (void)cases;
    for (int kind = 0; kind < 10; kind++) {
        size_t n = N;
        const char *what = "";
        switch (kind) {
        case 0: what = "10^6 letters"; memset(buf, 'a', n); break;
        case 1: what = "10^6 open braces"; memset(buf, '{', n); break;
        case 2: what = "10^6 close braces"; memset(buf, '}', n); break;
        case 3: { /* \boxed{ nested 100000 deep around 5 */
            what = "nested boxes";
            size_t k = 0, depth = 100000;
            for (size_t i = 0; i < depth; i++) memcpy(buf + k, "\\boxed{", 7), k += 7;
            buf[k++] = '5';
            memset(buf + k, '}', depth), k += depth;
            n = k;
            break;
        }
        case 4: { /* a 10^5-digit number, boxed */
            what = "huge number";
            memcpy(buf, "\\boxed{", 7);
            for (size_t i = 0; i < 100000; i++) buf[7 + i] = (char)('1' + i % 9);
            buf[100007] = '}';
            n = 100008;
            break;
        }
        case 5: { /* invalid UTF-8 everywhere */
            what = "invalid UTF-8";
            for (size_t i = 0; i < n; i++) buf[i] = (char)(0x80 + (i * 37) % 127);
            memcpy(buf + n - 20, "\\boxed{\xc3(\xff}", 12);
            break;
        }
        case 6: { /* deeply nested fractions inside one box */
            what = "nested fracs";
            size_t k = 0;
            memcpy(buf, "\\boxed{", 7), k = 7;
            for (int i = 0; i < 20000; i++) memcpy(buf + k, "\\frac{1}{", 9), k += 9;
            buf[k++] = '2';
            memset(buf + k, '}', 20000), k += 20000;
            buf[k++] = '}';
            n = k;
            break;
        }
        case 7: { /* "#### " repeated */
            what = "many ####";
            for (size_t i = 0; i + 5 <= n; i += 5) memcpy(buf + i, "#### ", 5);
            break;
        }
        case 8: { /* commas and digits: one enormous number */
            what = "1,1,1,...";
            for (size_t i = 0; i < n; i++) buf[i] = i % 2 ? ',' : '1';
            n -= 1;
            break;
        }
        case 9: { /* many parentheses in a boxed answer */
            what = "parentheses";
            memcpy(buf, "\\boxed{", 7);
            for (size_t i = 0; i < 4000; i++) buf[7 + i] = '(';
            for (size_t i = 0; i < 4000; i++) buf[4007 + i] = ')';
            buf[8007] = '}';
            n = 8008;
            break;
        }
        }
        buf[n] = '\0';
        segrl_reward_detail d;
        double t0 = now_s();
        float a = score1(g, buf, "5", &d);
        float b = score1(m, buf, "5", &d);
        double dt = now_s() - t0;
        CHECK(dt < 2.0, "adversarial %s: %.2f s", what, dt);
        CHECK(isfinite(a) && isfinite(b), "adversarial %s: finite", what);
        if (kind == 3) CHECK(b == 1.0f, "nested boxes: innermost 5 is the last box (%s)", segrl_reward_reason_name(d.reason));
        if (kind == 4) CHECK(d.reason == SEGRL_REWARD_TOO_LONG_INPUT, "huge number: %s", segrl_reward_reason_name(d.reason));
        if (kind == 0 || kind == 1 || kind == 2) CHECK(b == 0.0f && d.reason == SEGRL_REWARD_NO_ANSWER, "%s: no answer", what);
    }
    /* empty and NULL texts */
    segrl_reward_detail d;
    CHECK(score1(g, NULL, NULL, &d) == 0.0f, "NULL texts gsm8k");
    CHECK(score1(m, NULL, NULL, &d) == 0.0f && d.reason == SEGRL_REWARD_BAD_REFERENCE, "NULL texts math");
    CHECK(score1(m, "", "1", &d) == 0.0f && d.reason == SEGRL_REWARD_EMPTY_RESPONSE, "empty math");
    free(buf);
}

/* random LaTeX-token soup: never crashes (the sanitizer build checks memory) and equivalence is
 * reflexive */
static void test_token_soup(void) {
    static const char *tok[] = {"\\frac", "\\dfrac", "\\sqrt", "\\boxed", "\\text", "\\left", "\\right",
                                "{", "}", "(", ")", "[", "]", "\\{", "\\}", ",", "=", "x", "1", "23",
                                ".", "-", "+", "^", "\\pi", "\\infty", "\\cup", "&", "\\\\", " ",
                                "$", "%", "\\circ", "/", "e5", "\\begin{pmatrix}", "\\end{pmatrix}",
                                "\xff", "\xc3", "0", "\\!", "cm", "\\in", "{,}"};
    h_seed(99);
    char a[512];
    int bad = 0;
    for (int it = 0; it < 3000; it++) {
        size_t k = 0;
        int nt = (int)h_int(0, 40);
        for (int t = 0; t < nt; t++) {
            const char *x = tok[h_int(0, (int64_t)(sizeof tok / sizeof tok[0]) - 1)];
            size_t l = strlen(x);
            if (k + l >= sizeof a) break;
            memcpy(a + k, x, l);
            k += l;
        }
        a[k] = '\0';
        int eq = 0;
        if (segrl_math_equivalent(a, a, 0, &eq) != SEGRL_OK || eq != 1) bad++;
    }
    CHECK(bad == 0, "token soup: %d not reflexive", bad);
}

static void test_adversarial(void) {
    segrl_reward *g, *m;
    segrl_reward_gsm8k(NULL, &g);
    segrl_reward_math(NULL, &m);
    adversarial(g, m);
    segrl_reward_free(g);
    segrl_reward_free(m);
}

// ----------------------------------------------------------------------------
// the batch scorer: threads, time limits, errors

typedef struct custom_state {
    int mode; /* 0 constant, 1 sleep, 2 poll deadline, 3 fail on "bad", 4 return the response's length */
    float value;
} custom_state;

static segrl_status custom_score(void *user, const segrl_reward_sample *s, int64_t n,
                                 const segrl_reward_run *run, float *out, segrl_reward_detail *det) {
    (void)run;
    custom_state *c = user;
    for (int64_t i = 0; i < n; i++) {
        out[i] = c->value;
        if (c->mode == 1) {
            struct timespec ts = {0, 150 * 1000000L};
            nanosleep(&ts, NULL);
        } else if (c->mode == 2) {
            while (!segrl_reward_deadline_passed()) {
            }
            if (det) det[i].reason = SEGRL_REWARD_TIMEOUT;
        } else if (c->mode == 3 && s[i].response && strcmp(s[i].response, "bad") == 0) {
            return segrl_set_error(SEGRL_ERR_INVALID, "custom: sample says bad");
        } else if (c->mode == 4) {
            out[i] = s[i].response ? (float)strlen(s[i].response) : 0;
        }
    }
    return SEGRL_OK;
}

static segrl_status custom_segments(void *user, const segrl_reward_sample *s, int64_t n,
                                    const int64_t *off, const int64_t *st, const int64_t *en,
                                    const segrl_reward_run *run, float *out) {
    (void)user, (void)s, (void)run;
    for (int64_t k = 0; k < off[n]; k++) out[k] = (float)(en[k] - st[k]);
    return SEGRL_OK;
}

static segrl_reward *custom(int mode, float value) {
    custom_state *c = malloc(sizeof *c);
    c->mode = mode;
    c->value = value;
    segrl_reward_impl impl = {SEGRL_REWARD_ABI_VERSION, SEGRL_REWARD_PER_SAMPLE, "custom", c,
                              custom_score, custom_segments, free};
    segrl_reward *r = NULL;
    CHECK(segrl_reward_custom(&impl, &r) == SEGRL_OK, "custom: %s", segrl_last_error());
    return r;
}

/* several caller threads scoring with one reward at once (a trainer's workers): each gets the
 * same results as a lone caller */
typedef struct caller {
    segrl_reward *r;
    const segrl_reward_sample *s;
    int64_t n;
    float *out;
    segrl_status st;
} caller;

static void *caller_main(void *arg) {
    caller *c = arg;
    segrl_reward_run run = {2, 0, 0, 0};
    c->st = segrl_reward_score(c->r, c->s, c->n, &run, c->out, NULL);
    return NULL;
}

static void test_concurrent_callers(void) {
    segrl_reward *m, *g, *sum;
    segrl_reward_math(NULL, &m);
    segrl_reward_gsm8k(NULL, &g);
    segrl_reward *parts[2] = {m, g};
    float w[2] = {1.0f, 0.25f};
    CHECK(segrl_reward_weighted_sum(parts, w, 2, &sum) == SEGRL_OK, "sum");
    enum { N = 600, T = 4 };
    static char resp[N][48];
    segrl_reward_sample *s = calloc(N, sizeof *s);
    for (int i = 0; i < N; i++) {
        snprintf(resp[i], sizeof resp[i], "#### %d so \\boxed{\\frac{%d}{4}}", i % 5, i % 9);
        s[i].response = resp[i];
        s[i].answer = i % 2 ? "2" : "0.5";
    }
    float ref[N];
    segrl_reward_run one = {1, 0, 0, 0};
    segrl_reward_score(sum, s, N, &one, ref, NULL);
    caller c[T];
    pthread_t tid[T];
    float out[T][N];
    for (int t = 0; t < T; t++) {
        c[t] = (caller){sum, s, N, out[t], SEGRL_ERR_INVALID};
        pthread_create(&tid[t], NULL, caller_main, &c[t]);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(tid[t], NULL);
        CHECK(c[t].st == SEGRL_OK, "caller %d", t);
        h_same_f("concurrent caller", out[t], ref, N);
    }
    int hits = 0;
    for (int i = 0; i < N; i++) hits += ref[i] >= 1.0f;
    CHECK(hits > 0 && hits < N, "some right, some wrong: %d", hits);
    free(s);
    segrl_reward_free(sum);
}

static void test_pool(void) {
    /* threads: identical results */
    segrl_reward *m;
    segrl_reward_math(NULL, &m);
    enum { B = 2000 };
    static char resp[B][64], ref[B][32];
    segrl_reward_sample *s = calloc(B, sizeof *s);
    h_seed(11);
    for (int i = 0; i < B; i++) {
        int a = (int)h_int(1, 50), b = (int)h_int(1, 50);
        snprintf(resp[i], sizeof resp[i], "so \\boxed{\\frac{%d}{%d}}", a, b);
        snprintf(ref[i], sizeof ref[i], "%.9g", h_int(0, 1) ? (double)a / b : (double)a / b + 1);
        s[i].response = resp[i];
        s[i].answer = ref[i];
    }
    float *s1 = calloc(B, sizeof(float)), *s4 = calloc(B, sizeof(float));
    segrl_reward_detail *d4 = calloc(B, sizeof *d4);
    segrl_reward_run r1 = {1, 0, 0, 0}, r4 = {4, 0, 0, 0};
    CHECK(segrl_reward_score(m, s, B, &r1, s1, NULL) == SEGRL_OK, "1 thread");
    CHECK(segrl_reward_score(m, s, B, &r4, s4, d4) == SEGRL_OK, "4 threads");
    h_same_f("threads 1 vs 4", s1, s4, B);
    int right = 0;
    for (int i = 0; i < B; i++) right += s4[i] == 1.0f && d4[i].reason == SEGRL_REWARD_OK;
    CHECK(right > B / 4 && right < 3 * B / 4, "about half right: %d", right);
    CHECK(segrl_reward_score(m, s, B, NULL, s4, NULL) == SEGRL_OK, "NULL run");
    h_same_f("default threads", s1, s4, B);
    free(s1), free(s4), free(d4), free(s);
    segrl_reward_free(m);

    /* time limit: a slow sample gets the failure score */
    segrl_reward *slow = custom(1, 1.0f);
    segrl_reward_sample one[3] = {{0}};
    float sc[3];
    segrl_reward_detail dd[3];
    segrl_reward_run rl = {2, 0, 0.05, -1.0f};
    CHECK(segrl_reward_score(slow, one, 3, &rl, sc, dd) == SEGRL_OK, "slow");
    CHECK(sc[0] == -1.0f && dd[0].reason == SEGRL_REWARD_TIMEOUT && sc[2] == -1.0f,
          "slow: %g %s", sc[0], segrl_reward_reason_name(dd[0].reason));
    segrl_reward_run nolimit = {2, 0, -1, -1.0f};
    CHECK(segrl_reward_score(slow, one, 1, &nolimit, sc, dd) == SEGRL_OK && sc[0] == 1.0f,
          "no limit: %g", sc[0]);
    segrl_reward_free(slow);
    /* a reward polling its deadline returns at the limit */
    segrl_reward *poll = custom(2, 1.0f);
    double t0 = now_s();
    CHECK(segrl_reward_score(poll, one, 2, &rl, sc, dd) == SEGRL_OK, "poll");
    CHECK(now_s() - t0 < 1.0 && sc[1] == -1.0f && dd[1].reason == SEGRL_REWARD_TIMEOUT, "poll: %g", sc[1]);
    segrl_reward_free(poll);

    /* errors: failure score + message; fail_on_error: status, outputs untouched */
    segrl_reward *bad = custom(3, 0.5f);
    segrl_reward_sample bs[3] = {{0}};
    bs[0].response = "ok";
    bs[1].response = "bad";
    bs[2].response = "ok";
    segrl_reward_run re = {2, 0, 0, -2.0f};
    CHECK(segrl_reward_score(bad, bs, 3, &re, sc, dd) == SEGRL_OK, "errors tolerated");
    CHECK(sc[0] == 0.5f && sc[1] == -2.0f && sc[2] == 0.5f && dd[1].reason == SEGRL_REWARD_ERROR &&
              strstr(dd[1].message, "sample says bad"),
          "error sample: %g \"%s\"", sc[1], dd[1].message);
    re.fail_on_error = 1;
    sc[0] = sc[1] = sc[2] = 7;
    CHECK(segrl_reward_score(bad, bs, 3, &re, sc, dd) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "sample says bad"),
          "fail_on_error: %s", segrl_last_error());
    CHECK(sc[0] == 7 && sc[1] == 7 && sc[2] == 7, "fail_on_error: outputs untouched");
    segrl_reward_free(bad);

    /* argument errors */
    segrl_reward *c = custom(0, 1.0f);
    CHECK(segrl_reward_score(NULL, one, 1, NULL, sc, NULL) == SEGRL_ERR_INVALID, "NULL reward");
    CHECK(segrl_reward_score(c, one, -1, NULL, sc, NULL) == SEGRL_ERR_INVALID, "n < 0");
    CHECK(segrl_reward_score(c, NULL, 1, NULL, sc, NULL) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "samples"), "NULL samples");
    CHECK(segrl_reward_score(c, one, 1, NULL, NULL, NULL) == SEGRL_ERR_INVALID, "NULL out");
    segrl_reward_run badrun = {-1, 0, 0, 0};
    CHECK(segrl_reward_score(c, one, 1, &badrun, sc, NULL) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "run->threads"), "bad threads: %s", segrl_last_error());
    badrun.threads = 1, badrun.failure_score = NAN;
    CHECK(segrl_reward_score(c, one, 1, &badrun, sc, NULL) == SEGRL_ERR_INVALID, "NaN failure");
    CHECK(segrl_reward_score(c, one, 0, NULL, NULL, NULL) == SEGRL_OK, "n = 0");
    /* segments */
    int64_t off[3] = {0, 2, 3}, st[3] = {0, 4, 1}, en[3] = {4, 10, 2};
    float seg[3];
    CHECK(segrl_reward_score_segments(c, one, 2, off, st, en, NULL, seg) == SEGRL_OK &&
              seg[0] == 4 && seg[1] == 6 && seg[2] == 1,
          "segments: %g %g %g", seg[0], seg[1], seg[2]);
    int64_t bad_en[3] = {4, 3, 2};
    CHECK(segrl_reward_score_segments(c, one, 2, off, st, bad_en, NULL, seg) == SEGRL_ERR_INVALID,
          "bad span");
    segrl_reward *g;
    segrl_reward_gsm8k(NULL, &g);
    CHECK(segrl_reward_score_segments(g, one, 2, off, st, en, NULL, seg) == SEGRL_ERR_UNSUPPORTED,
          "no segments");
    CHECK(!segrl_reward_has_segments(g) && segrl_reward_has_segments(c), "has_segments");
    CHECK(strcmp(segrl_reward_name(g), "gsm8k") == 0, "name");
    segrl_reward_free(g);
    segrl_reward_free(c);
    segrl_reward_impl wrong = {SEGRL_REWARD_ABI_VERSION + 1, 0, "x", NULL, custom_score, NULL, NULL};
    segrl_reward *w = NULL;
    CHECK(segrl_reward_custom(&wrong, &w) == SEGRL_ERR_INVALID && !w &&
              strstr(segrl_last_error(), "abi_version"), "custom abi: %s", segrl_last_error());
}

// ----------------------------------------------------------------------------
// shaping rewards

static void test_shaping(void) {
    segrl_reward *f;
    CHECK(segrl_reward_format("^<think>.*</think>\\s*<answer>.*</answer>$", "s", 1.0f, -1.0f, &f) ==
              SEGRL_OK, "format: %s", segrl_last_error());
    segrl_reward_detail d;
    CHECK(score1(f, "<think>a\nb</think>\n<answer>5</answer>", NULL, &d) == 1.0f, "format match");
    CHECK(score1(f, "<think>a</think> 5", NULL, &d) == -1.0f && d.reason == SEGRL_REWARD_FORMAT_MISMATCH,
          "format miss");
    segrl_reward_free(f);
    /* catastrophic backtracking is cut by the match limit */
    CHECK(segrl_reward_format("^(a+)+$", NULL, 1.0f, 0.0f, &f) == SEGRL_OK, "format evil");
    char evil[64];
    memset(evil, 'a', 40);
    strcpy(evil + 40, "b");
    double t0 = now_s();
    CHECK(score1(f, evil, NULL, &d) == 0.0f, "evil pattern: no match");
    CHECK(now_s() - t0 < 2.0, "evil pattern bounded: %.2f s", now_s() - t0);
    segrl_reward_free(f);
    CHECK(segrl_reward_format("(", NULL, 1, 0, &f) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "pattern"), "bad pattern: %s", segrl_last_error());
    CHECK(segrl_reward_format("a", "q", 1, 0, &f) == SEGRL_ERR_INVALID, "bad flag");

    /* DAPO overlong: Lmax 100, Lc 20 */
    segrl_reward *o;
    CHECK(segrl_reward_overlong(100, 20, &o) == SEGRL_OK, "overlong");
    int64_t lens[] = {0, 50, 80, 81, 90, 100, 101, 1000};
    double want[] = {0, 0, 0, -0.05, -0.5, -1.0, -1.0, -1.0};
    int32_t *ids = calloc(1000, sizeof(int32_t));
    for (int i = 0; i < 8; i++) {
        segrl_reward_sample s = {0};
        s.response_ids = ids;
        s.num_response_ids = lens[i];
        float v;
        segrl_reward_score(o, &s, 1, NULL, &v, NULL);
        CHECK(fabs(v - want[i]) < 1e-6, "overlong L=%lld: %g want %g", (long long)lens[i], v, want[i]);
    }
    CHECK(score1(o, "short", NULL, &d) == 0.0f, "overlong bytes");
    free(ids);
    segrl_reward_free(o);
    CHECK(segrl_reward_overlong(100, 200, &o) == SEGRL_ERR_INVALID, "cache > max");

    /* repetition: bigrams of "a b a b a b": ab ba ab ba ab -> 3 of 5 repeated */
    segrl_reward *p;
    CHECK(segrl_reward_repetition(2, 1.0f, 1, &p) == SEGRL_OK, "repetition");
    CHECK(fabs(score1(p, "a b a b a b", NULL, &d) + 0.6) < 1e-6 && d.reason == SEGRL_REWARD_REPETITION,
          "repetition words");
    CHECK(score1(p, "the quick brown fox", NULL, &d) == 0.0f && d.reason == SEGRL_REWARD_OK, "no repeats");
    CHECK(score1(p, "single", NULL, &d) == 0.0f, "too short");
    int32_t tok[] = {5, 6, 5, 6, 7};
    segrl_reward_sample s = {0};
    s.response_ids = tok;
    s.num_response_ids = 5; /* bigrams 56 65 56 67: one repeated of four */
    float v;
    segrl_reward_score(p, &s, 1, NULL, &v, NULL);
    CHECK(fabs(v + 0.25) < 1e-6, "repetition tokens: %g", v);
    segrl_reward_free(p);
}

// ----------------------------------------------------------------------------
// combinators

static void test_combinators(void) {
    /* weighted sum of the GSM8K verifier and a format reward, sources logged */
    segrl_reward *g, *f, *sum;
    segrl_reward_gsm8k(NULL, &g);
    segrl_reward_format("####", NULL, 1.0f, 0.0f, &f);
    segrl_reward *parts[2] = {g, f};
    float w[2] = {1.0f, 0.5f};
    CHECK(segrl_reward_weighted_sum(parts, w, 2, &sum) == SEGRL_OK, "sum: %s", segrl_last_error());
    segrl_reward_detail d;
    CHECK(score1(sum, "#### 5", "5", &d) == 1.5f && d.num_sources == 2 && d.sources[0] == 1.0f &&
              d.sources[1] == 1.0f && strcmp(d.normalized, "5") == 0,
          "sum: sources %g %g", d.sources[0], d.sources[1]);
    CHECK(score1(sum, "The answer is 5", "5", &d) == 1.0f && d.reason == SEGRL_REWARD_FORMAT_MISMATCH,
          "sum without ####: %s", segrl_reward_reason_name(d.reason));
    CHECK(score1(sum, "#### 4", "5", &d) == 0.5f && d.reason == SEGRL_REWARD_WRONG, "sum wrong");
    segrl_reward_free(sum);

    /* ensembles: members 1, 2, 6 */
    int32_t aggs[4] = {SEGRL_ENSEMBLE_MEAN, SEGRL_ENSEMBLE_MEDIAN, SEGRL_ENSEMBLE_MIN,
                       SEGRL_ENSEMBLE_MEAN_MINUS_STD};
    double want[4] = {3.0, 2.0, 1.0, 3.0 - 0.5 * sqrt(14.0 / 3.0)};
    for (int a = 0; a < 4; a++) {
        segrl_reward *m[3] = {custom(0, 1), custom(0, 2), custom(0, 6)}, *e;
        CHECK(segrl_reward_ensemble(m, 3, aggs[a], 0.5f, &e) == SEGRL_OK, "ensemble");
        float v = score1(e, "x", "y", &d);
        CHECK(fabs(v - want[a]) < 1e-5, "ensemble agg %d: %g want %g", a, v, want[a]);
        segrl_reward_free(e);
    }
    float sc[6] = {1, 4, 2, 3, 6, 5}, out[2]; /* (3 parts, 2 samples) */
    CHECK(segrl_ensemble_apply(sc, 3, 2, SEGRL_ENSEMBLE_MEDIAN, 0, out) == SEGRL_OK &&
              out[0] == 2 && out[1] == 4, "ensemble_apply median: %g %g", out[0], out[1]);
    {
        segrl_reward *m[2] = {custom(0, 1), custom(0, 2)}, *e;
        CHECK(segrl_reward_ensemble(m, 2, 9, 0, &e) == SEGRL_ERR_INVALID, "bad agg");
        segrl_reward_free(m[0]), segrl_reward_free(m[1]);
    }

    /* PAR: r = 1, refs {0, 2}, k = 1 -> (sigma(1) + sigma(-1)) / 2 = 0.5 */
    segrl_reward *par;
    CHECK(segrl_reward_par(custom(0, 1), 1.0f, NULL, &par) == SEGRL_OK, "par");
    segrl_reward_sample s = {0};
    s.metadata_json = "{\"ref_rewards\": [0, 2]}";
    float v;
    segrl_reward_score(par, &s, 1, NULL, &v, &d);
    CHECK(fabs(v - 0.5) < 1e-6, "par: %g", v);
    s.metadata_json = "{\"ref_rewards\": 0}";
    segrl_reward_score(par, &s, 1, NULL, &v, &d);
    CHECK(fabs(v - 1.0 / (1.0 + exp(-1.0))) < 1e-6, "par single: %g", v);
    s.metadata_json = "{}";
    segrl_reward_run run = {1, 0, 0, -3.0f};
    segrl_reward_score(par, &s, 1, &run, &v, &d);
    CHECK(v == -3.0f && d.reason == SEGRL_REWARD_ERROR && strstr(d.message, "ref_rewards"),
          "par without refs: %g %s", v, d.message);
    segrl_reward_free(par);
    float r2[2] = {1, 0}, ref2[4] = {0, 2, 0, 0}, o2[2];
    CHECK(segrl_par_apply(r2, ref2, 2, 2, 2.0f, o2) == SEGRL_OK && fabs(o2[1] - 0.5) < 1e-6 &&
              fabs(o2[0] - 0.5 * (1 / (1 + exp(-2.0)) + 1 / (1 + exp(2.0)))) < 1e-6,
          "par_apply: %g %g", o2[0], o2[1]);

    /* LSC: log sigmoid(1 - 0) = -0.3132617 */
    segrl_reward *lsc;
    CHECK(segrl_reward_lsc(custom(0, 1), 0.0f, NULL, &lsc) == SEGRL_OK, "lsc");
    CHECK(fabs(score1(lsc, "x", "y", &d) + 0.31326169) < 1e-6, "lsc const");
    segrl_reward_free(lsc);
    CHECK(segrl_reward_lsc(custom(0, 1), 0.0f, "r_ref", &lsc) == SEGRL_OK, "lsc key");
    s.metadata_json = "{\"r_ref\": 3}";
    segrl_reward_score(lsc, &s, 1, NULL, &v, NULL);
    CHECK(fabs(v - (-2.0 - log1p(exp(-2.0)))) < 1e-5, "lsc key: %g", v);
    segrl_reward_free(lsc);
    float lr[2] = {-50, 50}, lref[2] = {0, 0}, lo[2];
    CHECK(segrl_lsc_apply(lr, lref, 2, lo) == SEGRL_OK && fabs(lo[0] + 50) < 1e-4 && lo[1] > -1e-6 &&
              isfinite(lo[0]), "lsc stable: %g %g", lo[0], lo[1]);

    /* clip */
    segrl_reward *cl;
    CHECK(segrl_reward_clip(custom(0, 5), -1, 1, &cl) == SEGRL_OK, "clip");
    CHECK(score1(cl, "x", "y", &d) == 1.0f, "clip high");
    segrl_reward_free(cl);

    /* Welford normalization: batch {1,2,3} then {4} */
    segrl_reward *nm;
    CHECK(segrl_reward_normalize(custom(4, 0), 0.0f, &nm) == SEGRL_OK, "normalize");
    segrl_reward_sample b3[3] = {{0}};
    b3[0].response = "a", b3[1].response = "bb", b3[2].response = "ccc";
    float nv[3];
    CHECK(segrl_reward_score(nm, b3, 3, NULL, nv, NULL) == SEGRL_OK, "normalize score");
    double sd = sqrt(2.0 / 3.0);
    CHECK(fabs(nv[0] + 1 / sd) < 1e-5 && fabs(nv[1]) < 1e-6 && fabs(nv[2] - 1 / sd) < 1e-5,
          "normalize batch 1: %g %g %g", nv[0], nv[1], nv[2]);
    b3[0].response = "dddd";
    segrl_reward_score(nm, b3, 1, NULL, nv, NULL);
    CHECK(fabs(nv[0] - 1.5 / sqrt(1.25)) < 1e-5, "normalize batch 2: %g", nv[0]);
    segrl_running_stats rs;
    CHECK(segrl_reward_normalize_stats(nm, &rs) == SEGRL_OK && rs.count == 4 &&
              fabs(rs.mean - 2.5) < 1e-12 && fabs(rs.m2 - 5.0) < 1e-9, "stats: %lld %g %g",
          (long long)rs.count, rs.mean, rs.m2);
    segrl_reward_free(nm);
    segrl_running_stats w2 = {0, 0, 0};
    float xs[5] = {2, 4, 4, 4, 5};
    segrl_running_stats_update(&w2, xs, 3);
    segrl_running_stats_update(&w2, xs + 3, 2);
    CHECK(fabs(w2.mean - 3.8) < 1e-12 && fabs(segrl_running_stats_std(&w2) - sqrt(0.96)) < 1e-12,
          "welford: %g %g", w2.mean, segrl_running_stats_std(&w2));

    /* a combinator over the thread pool: same as one thread */
    segrl_reward *m1, *g1, *s2;
    segrl_reward_math(NULL, &m1);
    segrl_reward_gsm8k(NULL, &g1);
    segrl_reward *p2[2] = {m1, g1};
    float w2v[2] = {0.5f, 0.5f};
    segrl_reward_weighted_sum(p2, w2v, 2, &s2);
    segrl_reward_sample many[100] = {{0}};
    char rb[100][32];
    for (int i = 0; i < 100; i++) {
        snprintf(rb[i], sizeof rb[i], "\\boxed{%d}", i % 7);
        many[i].response = rb[i];
        many[i].answer = "3";
    }
    float a1[100], a4[100];
    segrl_reward_run t1 = {1, 0, 0, 0}, t4 = {4, 0, 0, 0};
    segrl_reward_score(s2, many, 100, &t1, a1, NULL);
    segrl_reward_score(s2, many, 100, &t4, a4, NULL);
    h_same_f("sum threads", a1, a4, 100);
    CHECK(a1[3] == 1.0f && a1[4] == 0.0f, "sum values: %g %g", a1[3], a1[4]);
    segrl_reward_free(s2);
    /* ownership on failure: the caller keeps the parts */
    segrl_reward *x = custom(0, 1);
    segrl_reward *dup[2] = {x, x}, *bad = NULL;
    CHECK(segrl_reward_weighted_sum(dup, w, 2, &bad) == SEGRL_ERR_INVALID && !bad, "duplicate part");
    segrl_reward_free(x);
}

// ----------------------------------------------------------------------------
// by name

static void test_create(void) {
    static const char *specs[][2] = {
        {"gsm8k", "{\"multi_answer_penalty\": true, \"multi_answer_score\": -1}"},
        {"math", "{\"tolerance\": 1e-4}"},
        {"math", NULL},
        {"format", "{\"pattern\": \"^<think>\", \"flags\": \"s\"}"},
        {"overlong", "{\"max_length\": 100, \"cache_length\": 20}"},
        {"repetition", "{\"n\": 3}"},
        {"weighted_sum", "{\"parts\": [{\"name\": \"math\", \"weight\": 1}, {\"name\": \"format\", "
                         "\"options\": {\"pattern\": \"boxed\"}, \"weight\": 0.1}]}"},
        {"ensemble", "{\"parts\": [{\"name\": \"math\"}, {\"name\": \"gsm8k\"}], \"aggregate\": "
                     "\"mean_minus_std\", \"lambda\": 1}"},
        {"clip", "{\"inner\": {\"name\": \"math\"}, \"min\": 0, \"max\": 0.5}"},
        {"normalize", "{\"inner\": {\"name\": \"gsm8k\"}}"},
        {"par", "{\"inner\": {\"name\": \"gsm8k\"}, \"k\": 2}"},
        {"lsc", "{\"inner\": {\"name\": \"gsm8k\"}, \"ref\": 0.5}"},
        {"http", "{\"url\": \"http://127.0.0.1:1/\", \"timeout_s\": 1}"},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        segrl_reward *r = NULL;
        segrl_status st = segrl_reward_create(specs[i][0], specs[i][1], &r);
        CHECK(st == SEGRL_OK && r, "create %s: %s", specs[i][0], segrl_last_error());
        segrl_reward_free(r);
    }
    segrl_reward *r;
    CHECK(segrl_reward_create("clip", "{\"inner\": {\"name\": \"math\"}, \"min\": 0, \"max\": 0.5}", &r) == SEGRL_OK, "clip");
    segrl_reward_detail d;
    CHECK(score1(r, "\\boxed{2}", "2", &d) == 0.5f, "created clip scores");
    segrl_reward_free(r);
    r = NULL;
    CHECK(segrl_reward_create("nope", NULL, &r) == SEGRL_ERR_INVALID && !r &&
              strstr(segrl_last_error(), "unknown reward \"nope\""), "unknown: %s", segrl_last_error());
    CHECK(segrl_reward_create("math", "{\"tolerence\": 1}", &r) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "tolerence"), "unknown key: %s", segrl_last_error());
    CHECK(segrl_reward_create("math", "{\"tolerance\": \"x\"}", &r) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "must be a number"), "wrong type: %s", segrl_last_error());
    CHECK(segrl_reward_create("math", "[1]", &r) == SEGRL_ERR_INVALID, "not an object");
    CHECK(segrl_reward_create("weighted_sum", "{\"parts\": [{\"name\": \"math\"}, {\"name\": \"bad\"}]}", &r) ==
              SEGRL_ERR_INVALID && strstr(segrl_last_error(), "bad"), "bad part: %s", segrl_last_error());
    CHECK(segrl_reward_create("format", "{}", &r) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "pattern"), "format needs a pattern");
    CHECK(segrl_reward_create("http", "{\"url\": \"ftp://x\"}", &r) == SEGRL_ERR_INVALID, "http url");
    /* nesting limit */
    char deep[4096] = "";
    size_t k = 0;
    for (int i = 0; i < 40; i++) k += (size_t)snprintf(deep + k, sizeof deep - k, "{\"inner\": {\"name\": \"clip\", \"options\": ");
    k += (size_t)snprintf(deep + k, sizeof deep - k, "{}");
    for (int i = 0; i < 40; i++) k += (size_t)snprintf(deep + k, sizeof deep - k, "}}");
    CHECK(segrl_reward_create("clip", deep, &r) == SEGRL_ERR_INVALID, "deep nesting: %s", segrl_last_error());
    CHECK(strcmp(segrl_reward_reason_name(SEGRL_REWARD_TIMEOUT), "timeout") == 0 &&
              strcmp(segrl_reward_reason_name(999), "unknown") == 0, "reason names");
}

int main(void) {
    test_gsm8k();
    test_math_equivalence();
    test_math_responses();
    test_adversarial();
    test_token_soup();
    test_pool();
    test_concurrent_callers();
    test_shaping();
    test_combinators();
    test_create();
    return h_finish();
}
