/* SPDX-License-Identifier: Apache-2.0 */
/* test_scan_fast.c -- `alphatop scan --fast` end to end: three .npy snapshots of one layer in
 * order come out as gram, warm (after a small step) and skipped (unchanged), each JSON line with
 * its file and mode, alphas within 0.001 of exact mode. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "alphatop/htsr.h"
#include "fixture.h"

#define ROWS 400
#define COLS 700

/* A version 1.0 .npy file of a row-major float32 matrix. */
static void write_npy(const char *path, const float *w)
{
    char header[128];
    int n = snprintf(header, sizeof header,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", ROWS, COLS);
    /* magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64,
     * ending in '\n' */
    int total = (10 + n + 1 + 63) / 64 * 64;
    while (10 + n < total - 1)
        header[n++] = ' ';
    header[n++] = '\n';
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 0xff), (unsigned char)(n >> 8)};
    assert_int_equal(fwrite(pre, 1, 10, f), 10);
    assert_int_equal(fwrite(header, 1, (size_t)n, f), (size_t)n);
    assert_int_equal(fwrite(w, sizeof(float), ROWS * COLS, f), ROWS * COLS);
    fclose(f);
}

static double field(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    assert_non_null(p);
    return strtod(p + strlen(pat), NULL);
}

static void test_scan_fast_snapshots(void **state)
{
    (void)state;
    char dir[] = "/tmp/at_scan_fast_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[3][256];
    double exact_alpha[3];
    float *w = fx_spiked(ROWS, COLS, 30, 12.0, 0.6, 5);
    at_htsr *h = at_htsr_new();
    for (int i = 0; i < 3; i++) {
        if (i == 1)
            fx_perturb(w, ROWS, COLS, 1e-3, 6);
        snprintf(path[i], sizeof path[i], "%s/step%d.npy", dir, i);
        write_npy(path[i], w);
        at_tensor t = fx_tensor(w, ROWS, COLS);
        at_metrics m;
        assert_int_equal(at_htsr_analyze(h, &t, NULL, &m), AT_OK);
        exact_alpha[i] = m.alpha;
    }
    at_htsr_free(h);
    free(w);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/tui/alphatop scan --fast --json %s %s %s", AT_BINARY_DIR, path[0],
             path[1], path[2]);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    const char *modes[3] = {"\"mode\":\"gram\"", "\"mode\":\"warm\"", "\"mode\":\"skipped\""};
    char line[8192];
    int layers = 0;
    while (fgets(line, sizeof line, p)) {
        if (!strstr(line, "\"type\":\"layer\""))
            continue;
        assert_true(layers < 3);
        char file[300];
        snprintf(file, sizeof file, "\"file\":\"%s\"", path[layers]);
        assert_non_null(strstr(line, file));
        assert_non_null(strstr(line, modes[layers]));
        double a = field(line, "alpha");
        printf("  %s: alpha %.6f exact %.6f\n", modes[layers], a, exact_alpha[layers]);
        assert_true(fabs(a - exact_alpha[layers]) <= 0.001);
        layers++;
    }
    assert_int_equal(pclose(p), 0);
    assert_int_equal(layers, 3);
    for (int i = 0; i < 3; i++)
        unlink(path[i]);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_fast_snapshots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
