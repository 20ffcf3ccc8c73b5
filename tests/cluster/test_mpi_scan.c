/* SPDX-License-Identifier: Apache-2.0 */
/* test_mpi_scan.c -- `mpirun -n N alphatop scan` (tui/cmd/mpi_scan.c) against the program on
 * its own, on files written here:
 *   rows     a multi-file checkpoint (a 3-shard Hugging Face directory with F32, BF16, F16 and
 *            F64 layers, a skipped, an all-zero and a NaN layer and a conv; a second file; a
 *            deflated .npz whose layer exists only in rank 0's memory) scanned by 3 ranks gives
 *            the one-process scan's output byte for byte, exact and --fast (three snapshots: a
 *            layer's warm state stays on one rank), and the same exit status and messages;
 *   spread   a 200-layer job list whose analyses are replaced by sleeps of known length
 *            (ALPHATOP_TEST_SLEEP_NS_PER_WEIGHT) finishes on 8 and on 16 ranks (oversubscribed:
 *            sleeping needs no core) in about 1/N of the serial time; the scheduler's overhead
 *            (the makespan beyond serial/N and the largest task) is printed and bounded.
 * OpenMPI refuses root unless told; CI runs as root, so the test allows it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "fuzz_ckpt.h"
#include "testfiles.h"
#include "testutil.h"

/* Runs `[mpirun -n ranks] alphatop scan ARGS` (ranks 0: on its own) with env prepended (may be
 * ""); stdout into *out, stderr into *err (caller frees). Returns the exit status. */
static int scan(int ranks, const char *env, const char *args, char **out, char **err)
{
    char cmd[8192], outp[600], errp[600];
    snprintf(outp, sizeof outp, "%s", tf_path("out.txt"));
    snprintf(errp, sizeof errp, "%s", tf_path("err.txt"));
    if (ranks)
        snprintf(cmd, sizeof cmd,
                 "%s %s --oversubscribe --bind-to none -n %d %s/tui/alphatop scan %s >%s 2>%s", env,
                 AT_MPIEXEC, ranks, AT_BINARY_DIR, args, outp, errp);
    else
        snprintf(cmd, sizeof cmd, "%s %s/tui/alphatop scan %s >%s 2>%s", env, AT_BINARY_DIR, args,
                 outp, errp);
    const int st = system(cmd);
    size_t n;
    *out = at_test_slurp(outp, &n);
    *err = at_test_slurp(errp, &n);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Removes every line of text that starts with prefix and holds needle after it. */
static void drop_lines(char *text, const char *prefix, const char *needle)
{
    char *line = text;
    while (*line) {
        char *end = strchr(line, '\n');
        end = end ? end + 1 : line + strlen(line);
        const char *hit = strstr(line, needle);
        if (!strncmp(line, prefix, strlen(prefix)) && hit && hit < end)
            memmove(line, end, strlen(end) + 1);
        else
            line = end;
    }
}

/* err as it depends neither on the time taken nor on MPI: without mpirun's own notices (from the
 * first "-----" line on), the MPI summary and the progress lines a scan longer than a second
 * writes. */
static void strip_timing(char *err)
{
    char *dash = strstr(err, "\n-----");
    if (dash)
        dash[1] = '\0';
    drop_lines(err, "alphatop scan: MPI: ", "");
    drop_lines(err, "alphatop scan: ", " layers (");
    drop_lines(err, "alphatop scan: ", " layers in ");
}

static void expect_same(const char *args)
{
    char *out1, *err1, *out3, *err3;
    const int rc1 = scan(0, "", args, &out1, &err1);
    const int rc3 = scan(3, "", args, &out3, &err3);
    if (!strstr(err3, "alphatop scan: MPI: 3 ranks"))
        fail_msg("no MPI summary: %s", err3);
    strip_timing(err1);
    strip_timing(err3);
    assert_int_equal(rc3, rc1);
    assert_string_equal(out3, out1);
    assert_string_equal(err3, err1);
    assert_true(strlen(out1) > 100);
    free(out1);
    free(err1);
    free(out3);
    free(err3);
}

/* Writes dir/name, a safetensors file of the n tensors t. */
static void write_shard(const char *dir, const char *name, const tf_tensor *t, int n)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tf_write_safetensors(path, t, n, 8, 0);
}

static void test_rows(void **state)
{
    (void)state;
    char dir[600], args[2400], path[700];
    snprintf(dir, sizeof dir, "%s", tf_path("model"));
    assert_int_equal(mkdir(dir, 0700), 0);
    /* Shard 1: F32 and BF16 layers, a norm; shard 2: F16, F64, a conv and a tiny (skipped)
     * layer; shard 3: the all-zero and the NaN layer and lm_head. */
    float *w[8];
    for (int i = 0; i < 8; i++)
        w[i] = tf_gauss(96 * 80, 200 + (uint64_t)i, 0.1);
    uint16_t h[64 * 80], bf[80 * 96];
    double d[50 * 40];
    for (int i = 0; i < 64 * 80; i++)
        h[i] = tf_f32_to_f16_exact((float)((i * 37) % 255 - 127) / 64.0f);
    for (int i = 0; i < 80 * 96; i++)
        bf[i] = tf_f32_to_bf16_exact(w[1][i]);
    for (int i = 0; i < 50 * 40; i++)
        d[i] = w[2][i] * 1.000000001;
    float zero[40 * 30] = {0};
    w[3][17] = NAN;
    const tf_tensor s1[] = {
        {"model.embed.weight", "F32", 2, {96, 80}, w[0], 96 * 80 * 4, 0, 0},
        {"model.layers.0.q.weight", "BF16", 2, {80, 96}, bf, sizeof bf, 0, 0},
        {"model.layers.0.norm.weight", "F32", 1, {80}, w[0], 80 * 4, 0, 0},
    };
    const tf_tensor s2[] = {
        {"model.layers.0.up.weight", "F16", 2, {64, 80}, h, sizeof h, 0, 0},
        {"model.layers.1.q.weight", "F64", 2, {50, 40}, d, sizeof d, 0, 0},
        {"model.layers.1.conv.weight", "F32", 4, {12, 10, 3, 3}, w[4], 12 * 10 * 9 * 4, 0, 0},
        {"model.layers.1.tiny.weight", "F32", 2, {6, 80}, w[5], 6 * 80 * 4, 0, 0},
    };
    const tf_tensor s3[] = {
        {"model.layers.2.zero.weight", "F32", 2, {40, 30}, zero, sizeof zero, 0, 0},
        {"model.layers.2.nan.weight", "F32", 2, {96, 80}, w[3], 96 * 80 * 4, 0, 0},
        {"lm_head.weight", "F32", 2, {96, 80}, w[6], 96 * 80 * 4, 0, 0},
    };
    write_shard(dir, "model-00001-of-00003.safetensors", s1, 3);
    write_shard(dir, "model-00002-of-00003.safetensors", s2, 4);
    write_shard(dir, "model-00003-of-00003.safetensors", s3, 3);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    const char *index =
        "{\"weight_map\": {\"model.embed.weight\": \"model-00001-of-00003.safetensors\", "
        "\"model.layers.0.q.weight\": \"model-00001-of-00003.safetensors\", "
        "\"model.layers.0.norm.weight\": \"model-00001-of-00003.safetensors\", "
        "\"model.layers.0.up.weight\": \"model-00002-of-00003.safetensors\", "
        "\"model.layers.1.q.weight\": \"model-00002-of-00003.safetensors\", "
        "\"model.layers.1.conv.weight\": \"model-00002-of-00003.safetensors\", "
        "\"model.layers.1.tiny.weight\": \"model-00002-of-00003.safetensors\", "
        "\"model.layers.2.zero.weight\": \"model-00003-of-00003.safetensors\", "
        "\"model.layers.2.nan.weight\": \"model-00003-of-00003.safetensors\", "
        "\"lm_head.weight\": \"model-00003-of-00003.safetensors\"}}";
    tf_write_bytes(path, index, strlen(index));
    /* A second file, and a deflated npz: its layer is only in memory, analysed on rank 0. */
    char second[700], npz[700];
    snprintf(second, sizeof second, "%s", tf_path("second.safetensors"));
    write_shard(dir, "../second.safetensors", s3 + 2, 1);
    tf_write_npy(tf_path("w.npy"), 1,
                 "{'descr': '<f4', 'fortran_order': False, 'shape': (96, 80), }", w[7],
                 96 * 80 * 4);
    size_t n, zn;
    char *npy = at_test_slurp(tf_path("w.npy"), &n);
    const char *names[] = {"fc.weight.npy"};
    const void *data[] = {npy};
    unsigned char *zip = at_fuzz_zip(1, names, data, &n, 1, &zn);
    snprintf(npz, sizeof npz, "%s", tf_path("c.npz"));
    tf_write_bytes(npz, zip, zn);
    free(zip);
    free(npy);
    snprintf(args, sizeof args, "--json --threads 1 %s %s %s", dir, second, npz);
    expect_same(args);
    snprintf(args, sizeof args, "--threads 2 --mp %s %s", dir, npz);
    expect_same(args);
    /* --fast over three snapshots: warm updates need each layer's state on one rank. */
    char snaps[3][700];
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 96 * 80; i++)
            w[0][i] += 1e-3f * w[6][(i * 7) % (96 * 80)];
        snprintf(snaps[k], sizeof snaps[k], "%s",
                 tf_path(k == 0   ? "s0.safetensors"
                         : k == 1 ? "s1.safetensors"
                                  : "s2.safetensors"));
        const tf_tensor s[] = {
            {"a.weight", "F32", 2, {96, 80}, w[0], 96 * 80 * 4, 0, 0},
            {"b.weight", "F32", 2, {96, 80}, w[6], 96 * 80 * 4, 0, 0},
            {"c.weight", "F32", 2, {80, 96}, w[0], 96 * 80 * 4, 0, 0},
        };
        tf_write_safetensors(snaps[k], s, 3, 8, 0);
    }
    snprintf(args, sizeof args, "--fast --json --threads 1 %s %s %s", snaps[0], snaps[1], snaps[2]);
    expect_same(args);
    for (int i = 0; i < 8; i++)
        free(w[i]);
}

/* A number of the MPI summary line: the one right after before (or after after_key, when
 * given, past before). */
static double figure(const char *err, const char *before, const char *after_key)
{
    const char *line = strstr(err, "alphatop scan: MPI: ");
    if (!line)
        fail_msg("no MPI summary in: %s", err);
    const char *k = before ? strstr(line, before) : line;
    assert_non_null(k);
    if (after_key) {
        k = strstr(k, after_key);
        assert_non_null(k);
        k += strlen(after_key);
    } else {
        k += strlen(before);
    }
    return strtod(k, NULL);
}

static void test_spread(void **state)
{
    (void)state;
    /* 200 layers of 16..88 x 16..88 weights, seeded; each sleeps 20 us per weight. */
    enum { LAYERS = 200 };
    const double ns_per_weight = 20000;
    tf_tensor t[LAYERS];
    static char names[LAYERS][32];
    float *w = tf_gauss(88 * 88, 7, 1.0);
    double serial = 0, largest = 0;
    uint64_t x = 12345;
    for (int i = 0; i < LAYERS; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const int64_t rows = 16 + (int64_t)((x >> 33) % 73), cols = 16 + (int64_t)((x >> 45) % 73);
        snprintf(names[i], sizeof names[i], "layers.%d.weight", i);
        t[i] = (tf_tensor){names[i], "F32", 2, {rows, cols}, w, (size_t)(rows * cols) * 4, 0, 0};
        const double s = (double)(rows * cols) * ns_per_weight * 1e-9;
        serial += s;
        largest = s > largest ? s : largest;
    }
    char path[700], args[800], env[200];
    snprintf(path, sizeof path, "%s", tf_path("many.safetensors"));
    tf_write_safetensors(path, t, LAYERS, 8, 0);
    snprintf(args, sizeof args, "--json --threads 1 %s", path);
    snprintf(env, sizeof env, "ALPHATOP_TEST_SLEEP_NS_PER_WEIGHT=%.0f", ns_per_weight);
    char *out1, *err1;
    assert_int_equal(scan(0, "", args, &out1, &err1), 0);
    print_message("serial: %d layers, %.3f s of sleep, largest task %.3f s\n", LAYERS, serial,
                  largest);
    for (int ranks = 8; ranks <= 16; ranks *= 2) {
        char *out, *err;
        assert_int_equal(scan(ranks, env, args, &out, &err), 0);
        assert_string_equal(out, out1);
        const double wall = figure(err, " tasks in ", NULL);
        const double work = figure(err, " s, ", NULL);
        const double ideal = serial / ranks, idle = wall * ranks - work;
        print_message("%2d ranks: %.3f s, ideal serial/N %.3f s, speed-up %.1f; makespan beyond "
                      "serial/N %.3f s; ranks idle %.3f s in all, %.1f ms per task (start-up, "
                      "hand-outs, the last tasks' tail)\n",
                      ranks, wall, ideal, serial / wall, wall - ideal, idle, 1e3 * idle / LAYERS);
        /* Dynamic balancing, largest first: within the largest task of serial/N, plus a
         * scheduler overhead of at most 25% (a loaded 2-core machine's wake-up latency) and
         * half a second for 16 oversubscribed processes to start under a sanitizer. */
        assert_true(work >= serial * 0.99);
        assert_true(wall <= 1.25 * ideal + largest + 0.5);
        free(out);
        free(err);
    }
    free(out1);
    free(err1);
    free(w);
}

int main(void)
{
    /* OpenMPI refuses to run as root unless both are set. */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_spread),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tf_cleanup();
    return rc;
}
