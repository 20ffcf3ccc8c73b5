/* SPDX-License-Identifier: Apache-2.0 */
/* bench_scan.c -- `alphatop scan --fast` of a Llama-3-8B-shaped checkpoint, and the reference
 * method on a sample of its layers, side by side in one run.
 *
 * Writes a sharded Hugging Face directory (config.json, model-0000K-of-0000N.safetensors of at
 * most 5 GB each, model.safetensors.index.json) holding Llama-3-8B's tensors in BF16 (32
 * blocks of q/k/v/o and gate/up/down projections and two norms, the 128256 x 4096 embedding and
 * lm_head: 8.03e9 weights, 16 GB), filled by a seeded generator (Gaussian-like, scaled by
 * 1/sqrt(fan-in)). Then runs the real program, `alphatop scan --fast --json --threads T DIR`,
 * for each T asked, and reports its wall time, layers per second, peak RSS and CPU time (from
 * wait4), and whether the outputs of every T are byte-identical. Then one layer of each kind
 * (k_proj, q_proj, gate_proj, the embedding) on one thread, by alphatop and by the reference
 * method -- WeightWatcher's way: a float64 copy, LAPACKE_dgesdd's singular values, the power-law
 * fit and the scale metrics -- side by side in CPU seconds (the machine is shared: CPU time
 * depends less on the load than wall time); the reference's time for the whole model
 * extrapolated by dgesdd's flop count, and alphatop's per-layer cost model (Gram product and
 * eigenvalues) fitted and extrapolated to a Llama-2-70B-shaped checkpoint. The load average is
 * printed around every timed run. The directory is deleted at the end unless --keep.
 *
 * Usage: bench_scan [--dir PARENT] [--model DIR] [--threads 1,2] [--blocks N] [--repeat N]
 *                   [--reference none|small|big] [--keep]
 *   --dir PARENT      where to write the model (default: the first of /tmp, /var/tmp with room)
 *   --model DIR       scan an existing directory made by an earlier --keep run instead
 *   --threads LIST    thread counts to scan with, in order (default 1,2)
 *   --blocks N        transformer blocks (default 32; fewer for a quick look)
 *   --repeat N        scans per thread count (default 1)
 *   --reference R     small: the reference on k_proj and q_proj (default); big: also on
 *                     gate_proj (minutes); none: no per-layer comparison
 *   --keep            keep the directory */
#include <cblas.h>
#include <errno.h>
#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alphatop/htsr.h"
#include "bench_clock.h"
#include "ckpt.h"

#define HIDDEN 4096
#define INTER 14336
#define KV 1024
#define VOCAB 128256
#define SHARD_MAX 5000000000ull /* save_pretrained's default max_shard_size, "5GB" */
#define MAX_TENSORS 512

typedef struct tensor {
    char name[96];
    int64_t rows, cols; /* cols 0: a 1-D norm weight */
    int shard;
    uint64_t offset; /* in its shard's data section */
} tensor;

typedef struct model {
    tensor t[MAX_TENSORS];
    int n, shards;
} model;

static void die(const char *what)
{
    fprintf(stderr, "bench_scan: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t bytes_of(const tensor *t)
{
    return (uint64_t)t->rows * (uint64_t)(t->cols ? t->cols : 1) * 2;
}

static void add(model *m, const char *name, int64_t rows, int64_t cols)
{
    tensor *t = &m->t[m->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
}

/* Llama-3-8B's tensors in state-dict order, assigned to shards of at most SHARD_MAX bytes. */
static void llama(model *m, int blocks)
{
    char n[96];
    m->n = 0;
    add(m, "model.embed_tokens.weight", VOCAB, HIDDEN);
    static const struct {
        const char *name;
        int64_t rows, cols;
    } block[] = {
        {"self_attn.q_proj.weight", HIDDEN, HIDDEN},    {"self_attn.k_proj.weight", KV, HIDDEN},
        {"self_attn.v_proj.weight", KV, HIDDEN},        {"self_attn.o_proj.weight", HIDDEN, HIDDEN},
        {"mlp.gate_proj.weight", INTER, HIDDEN},        {"mlp.up_proj.weight", INTER, HIDDEN},
        {"mlp.down_proj.weight", HIDDEN, INTER},        {"input_layernorm.weight", HIDDEN, 0},
        {"post_attention_layernorm.weight", HIDDEN, 0},
    };
    for (int b = 0; b < blocks; b++)
        for (size_t k = 0; k < sizeof block / sizeof block[0]; k++) {
            snprintf(n, sizeof n, "model.layers.%d.%s", b, block[k].name);
            add(m, n, block[k].rows, block[k].cols);
        }
    add(m, "model.norm.weight", HIDDEN, 0);
    add(m, "lm_head.weight", VOCAB, HIDDEN);
    uint64_t used = 0;
    m->shards = 1;
    for (int i = 0; i < m->n; i++) {
        if (used && used + bytes_of(&m->t[i]) > SHARD_MAX) {
            m->shards++;
            used = 0;
        }
        m->t[i].shard = m->shards - 1;
        m->t[i].offset = used;
        used += bytes_of(&m->t[i]);
    }
}

/* xoshiro256+ */
typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t next(rng *r)
{
    uint64_t *s = r->s, out = s[0] + s[3], t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return out;
}

static void seed(rng *r, uint64_t x)
{
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ull;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        r->s[i] = z ^ (z >> 31);
    }
}

static uint16_t bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* Writes count BF16 values: a norm's near 1, a matrix's ~ N(0, 1/cols) (the sum of four
 * 16-bit uniforms, centred and scaled). */
static void fill(FILE *f, const tensor *t, rng *r)
{
    enum { CHUNK = 1 << 22 };
    static uint16_t buf[CHUNK];
    const uint64_t count = bytes_of(t) / 2;
    const float scale = t->cols ? (float)(sqrt(3.0) / 32768.0 / sqrt((double)t->cols)) : 0.0f;
    for (uint64_t done = 0; done < count;) {
        const size_t k = count - done < CHUNK ? (size_t)(count - done) : CHUNK;
        for (size_t i = 0; i < k; i++) {
            const uint64_t x = next(r);
            const int32_t sum = (int32_t)(x & 0xffff) + (int32_t)((x >> 16) & 0xffff) +
                                (int32_t)((x >> 32) & 0xffff) + (int32_t)(x >> 48) - 131070;
            buf[i] = bf16(t->cols ? (float)sum * scale : 1.0f + (float)sum / 4e6f);
        }
        if (fwrite(buf, 2, k, f) != k)
            die("write");
        done += k;
    }
}

static void write_model(const model *m, const char *dir)
{
    char path[1200];
    rng r;
    seed(&r, 20240518);
    for (int s = 0; s < m->shards; s++) {
        /* The header: every tensor of the shard, padded with spaces to 8 bytes. */
        size_t cap = 1 << 16, len = 0;
        char *h = malloc(cap);
        if (!h)
            die("malloc");
        len += (size_t)snprintf(h + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
        for (int i = 0; i < m->n; i++) {
            const tensor *t = &m->t[i];
            if (t->shard != s)
                continue;
            char shape[64];
            if (t->cols)
                snprintf(shape, sizeof shape, "%lld,%lld", (long long)t->rows, (long long)t->cols);
            else
                snprintf(shape, sizeof shape, "%lld", (long long)t->rows);
            len += (size_t)snprintf(
                h + len, cap - len,
                ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%s],\"data_offsets\":[%llu,%llu]}", t->name,
                shape, (unsigned long long)t->offset,
                (unsigned long long)(t->offset + bytes_of(t)));
        }
        len += (size_t)snprintf(h + len, cap - len, "}");
        while (len % 8)
            h[len++] = ' ';
        snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, s + 1, m->shards);
        FILE *f = fopen(path, "wb");
        if (!f)
            die(path);
        const uint64_t hl = len;
        if (fwrite(&hl, 8, 1, f) != 1 || fwrite(h, 1, len, f) != len)
            die("write");
        free(h);
        for (int i = 0; i < m->n; i++)
            if (m->t[i].shard == s)
                fill(f, &m->t[i], &r);
        if (fclose(f) != 0)
            die("close");
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        die(path);
    fprintf(f, "{\"metadata\":{\"total_size\":%llu},\"weight_map\":{",
            (unsigned long long)(m->t[m->n - 1].offset + bytes_of(&m->t[m->n - 1])));
    for (int i = 0; i < m->n; i++)
        fprintf(f, "%s\"%s\":\"model-%05d-of-%05d.safetensors\"", i ? "," : "", m->t[i].name,
                m->t[i].shard + 1, m->shards);
    fputs("}}\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!(f = fopen(path, "w")))
        die(path);
    fprintf(f,
            "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":%d,"
            "\"intermediate_size\":%d,\"num_attention_heads\":32,\"num_key_value_heads\":8,"
            "\"vocab_size\":%d,\"torch_dtype\":\"bfloat16\"}\n",
            HIDDEN, INTER, VOCAB);
    fclose(f);
}

/* One `alphatop scan` run. */
typedef struct run {
    double wall, cpu, rss_mb, load_before, load_after;
    int layers, code;
} run;

/* `alphatop scan --fast --json --threads threads DIR`, of the layers matching regex layers
 * (NULL: all), its stdout into out_path and stderr into err_path. */
static run scan_once(const char *dir, int threads, const char *layers, const char *out_path,
                     const char *err_path)
{
    run r = {.load_before = loadavg()};
    char t[16];
    snprintf(t, sizeof t, "%d", threads);
    fflush(stdout); /* the child must not write our buffered lines again */
    const double t0 = now();
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        if (!freopen(out_path, "w", stdout) || !freopen(err_path, "w", stderr))
            _exit(127);
        if (layers)
            execl(AT_ALPHATOP, "alphatop", "scan", "--fast", "--json", "--threads", t, "--layers",
                  layers, dir, (char *)NULL);
        else
            execl(AT_ALPHATOP, "alphatop", "scan", "--fast", "--json", "--threads", t, dir,
                  (char *)NULL);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0)
        die("wait4");
    r.wall = now() - t0;
    r.load_after = loadavg();
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.cpu = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
            (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
    r.rss_mb = (double)ru.ru_maxrss / 1024.0;
    FILE *f = fopen(out_path, "r");
    char line[8192];
    while (f && fgets(line, sizeof line, f))
        r.layers += strstr(line, "\"type\":\"layer\"") && strstr(line, "\"status\":\"success\"");
    if (f)
        fclose(f);
    return r;
}

static int same_file(const char *a, const char *b)
{
    FILE *f = fopen(a, "rb"), *g = fopen(b, "rb");
    int same = f && g, x = 0, y = 0;
    while (same && (x = fgetc(f)) == (y = fgetc(g)) && x != EOF)
        ;
    same = same && x == y;
    if (f)
        fclose(f);
    if (g)
        fclose(g);
    return same;
}

/* dgesdd's flops for singular values only of an m x n matrix (m >= n): QR first when m is
 * well above n (LAPACK's crossover 11/6), then the bidiagonal reduction. */
static double svd_flops(double m, double n)
{
    if (m < n) {
        const double t = m;
        m = n;
        n = t;
    }
    return m >= 11.0 / 6.0 * n ? 2 * m * n * n - 2.0 / 3 * n * n * n + 8.0 / 3 * n * n * n
                               : 4 * m * n * n - 4.0 / 3 * n * n * n;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The reference method on layer name of c: wall seconds, CPU seconds into *cpu, alpha into
 * *alpha. */
static double reference(const at_ckpt *c, const char *name, double *cpu, double *alpha)
{
    const at_ckpt_layer *l = at_ckpt_find(c, name);
    char err[256];
    int status;
    at_ckpt_view *v = l ? at_ckpt_view_open(&l->tensor, &l->loc, &status, err, sizeof err) : NULL;
    const at_tensor *t = v ? at_ckpt_view_tensor(v) : NULL;
    if (!t) {
        fprintf(stderr, "bench_scan: cannot read %s\n", name);
        exit(1);
    }
    const int64_t rows = t->shape[0], cols = t->shape[1], p = rows < cols ? rows : cols;
    const size_t count = (size_t)(rows * cols);
    const double t0 = now(), c0 = cpu_now();
    float *f = malloc(count * sizeof *f);
    double *a = malloc(count * sizeof *a), *s = malloc((size_t)p * sizeof *s);
    if (!f || !a || !s)
        die("malloc");
    at_convert_to_f32(t->data, t->dtype, count, f);
    for (size_t i = 0; i < count; i++)
        a[i] = f[i];
    double dummy = 0.0;
    /* Row-major rows x cols is column-major cols x rows: the same singular values. */
    if (LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (int)cols, (int)rows, a, (int)cols, s, &dummy, 1,
                       &dummy, 1) != 0)
        fprintf(stderr, "bench_scan: dgesdd failed on %s\n", name);
    double *x = malloc((size_t)p * sizeof *x);
    for (int64_t i = 0; i < p; i++)
        x[i] = s[p - 1 - i] * s[p - 1 - i];
    at_fit fit;
    at_metrics m;
    at_metrics_init(&m, AT_MODE_EXACT);
    at_powerlaw_fit(x, (size_t)p, &fit);
    at_scale_metrics(x, (size_t)p, &m);
    const double secs = now() - t0;
    *cpu = cpu_now() - c0;
    *alpha = fit.alpha;
    free(f);
    free(a);
    free(s);
    free(x);
    at_ckpt_view_close(v);
    return secs;
}

/* A parent directory with room for bytes (and 10% more). */
static const char *pick_parent(const char *given, uint64_t bytes)
{
    static const char *candidates[] = {"/tmp", "/var/tmp"};
    for (int i = given ? -1 : 0; i < 2; i++) {
        const char *d = i < 0 ? given : candidates[i];
        struct statvfs st;
        if (statvfs(d, &st) == 0) {
            const double avail = (double)st.f_bavail * (double)st.f_frsize;
            printf("free space in %s: %.1f GB\n", d, avail / 1e9);
            if (avail > 1.1 * (double)bytes)
                return d;
        }
        if (given)
            break;
    }
    fprintf(stderr, "bench_scan: no directory with %.1f GB free\n", 1.1 * (double)bytes / 1e9);
    exit(1);
}

int main(int argc, char **argv)
{
    const char *parent = NULL, *existing = NULL, *threads_list = "1,2", *ref = "small";
    int blocks = 32, repeat = 1, keep = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            parent = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            existing = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads_list = argv[++i];
        else if (!strcmp(argv[i], "--blocks") && i + 1 < argc)
            blocks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reference") && i + 1 < argc)
            ref = argv[++i];
        else if (!strcmp(argv[i], "--keep"))
            keep = 1;
        else {
            fprintf(stderr, "usage: bench_scan [--dir PARENT] [--model DIR] [--threads 1,2] "
                            "[--blocks N] [--repeat N] [--reference none|small|big] [--keep]\n");
            return 2;
        }
    }
    if (blocks < 1 || blocks > 32 || repeat < 1)
        return fprintf(stderr, "bench_scan: --blocks 1..32, --repeat >= 1\n"), 2;
    model *m = calloc(1, sizeof *m);
    if (!m)
        die("calloc");
    llama(m, blocks);
    uint64_t total = 0;
    int layers = 0;
    for (int i = 0; i < m->n; i++) {
        total += bytes_of(&m->t[i]);
        layers += m->t[i].cols != 0;
    }
    printf("bench_scan: Llama-3-8B-shaped checkpoint, %d blocks: %d tensors (%d layers), %.3g "
           "weights, %.2f GB BF16 in %d shards\n",
           blocks, m->n, layers, (double)total / 2, (double)total / 1e9, m->shards);
    printf("machine: %ld CPUs online, load average %.2f\n", sysconf(_SC_NPROCESSORS_ONLN),
           loadavg());
    char dir[1024];
    if (existing) {
        snprintf(dir, sizeof dir, "%s", existing);
    } else {
        snprintf(dir, sizeof dir, "%s/bench-scan-%d", pick_parent(parent, total), (int)getpid());
        if (mkdir(dir, 0700) != 0)
            die(dir);
        const double t0 = now();
        write_model(m, dir);
        printf("wrote %s in %.1f s (%.2f GB/s)\n", dir, now() - t0,
               (double)total / 1e9 / (now() - t0));
    }

    /* The scans. */
    char out[1100], err[1100], first_out[1100] = "";
    int all_same = 1;
    double cpu1 = 0.0;
    printf("\n%-8s %-3s %9s %7s %9s %11s %9s %7s %s\n", "threads", "run", "wall s", "layers",
           "layers/s", "peak RSS MB", "CPU s", "exit", "load before -> after");
    for (const char *p = threads_list; *p;) {
        const int th = atoi(p);
        for (int k = 0; k < repeat; k++) {
            snprintf(out, sizeof out, "%s.scan-t%d-%d.jsonl", dir, th, k);
            snprintf(err, sizeof err, "%s.scan-t%d-%d.err", dir, th, k);
            const run r = scan_once(dir, th, NULL, out, err);
            printf("%-8d %-3d %9.1f %7d %9.3f %11.0f %9.1f %7d %.2f -> %.2f\n", th, k + 1, r.wall,
                   r.layers, r.layers / r.wall, r.rss_mb, r.cpu, r.code, r.load_before,
                   r.load_after);
            fflush(stdout);
            if (th == 1 && (cpu1 == 0.0 || r.cpu < cpu1))
                cpu1 = r.cpu;
            if (!first_out[0])
                snprintf(first_out, sizeof first_out, "%s", out);
            else
                all_same &= same_file(first_out, out);
            if (strcmp(out, first_out) != 0)
                unlink(out);
            unlink(err);
        }
        p = strchr(p, ',');
        p = p ? p + 1 : "";
    }
    printf("outputs of every run byte-identical: %s\n", all_same ? "yes" : "NO");
    unlink(first_out);

    /* One layer of each kind on one thread: alphatop --fast (its own process, CPU time from
     * wait4) and the reference method, side by side; then the models extrapolated. */
    if (strcmp(ref, "none") != 0) {
        openblas_set_num_threads(1);
        at_ckpt_opts lazy = {.lazy = 1};
        at_ckpt *c = at_ckpt_open(dir, &lazy);
        if (!c || at_ckpt_status(c) < 0)
            return fprintf(stderr, "bench_scan: cannot open %s\n", dir), 1;
        enum { K, Q, GATE, EMB, CLASSES };
        static const struct {
            const char *name, *regex;
            int64_t rows, cols;
            int reference; /* 0: alphatop only; 2: the reference only with --reference big */
        } cls[CLASSES] = {
            {"model.layers.0.self_attn.k_proj.weight", "^model[.]layers[.]0[.]self_attn[.]k_proj",
             KV, HIDDEN, 1},
            {"model.layers.0.self_attn.q_proj.weight", "^model[.]layers[.]0[.]self_attn[.]q_proj",
             HIDDEN, HIDDEN, 1},
            {"model.layers.0.mlp.gate_proj.weight", "^model[.]layers[.]0[.]mlp[.]gate_proj", INTER,
             HIDDEN, 2},
            {"model.embed_tokens.weight", "^model[.]embed_tokens", VOCAB, HIDDEN, 0},
        };
        double fast_cpu[CLASSES] = {0}, ref_cpu[CLASSES] = {0}, flops = 0, ref_total = 0;
        printf("\none layer of each kind, 1 thread: alphatop scan --fast (a process of its own) "
               "and the reference method (float64 copy, LAPACKE_dgesdd values, fit, scale "
               "metrics)\n%-40s %13s %10s %10s %10s %10s %8s %s\n",
               "layer", "shape", "fast s", "fast CPU", "ref s", "ref CPU", "CPU x", "load");
        for (int k = 0; k < CLASSES; k++) {
            snprintf(out, sizeof out, "%s.one.jsonl", dir);
            snprintf(err, sizeof err, "%s.one.err", dir);
            const run r = scan_once(dir, 1, cls[k].regex, out, err);
            unlink(out);
            unlink(err);
            fast_cpu[k] = r.cpu;
            double wall = NAN, alpha = NAN;
            if (cls[k].reference == 1 || (cls[k].reference == 2 && !strcmp(ref, "big"))) {
                wall = reference(c, cls[k].name, &ref_cpu[k], &alpha);
                flops += svd_flops((double)cls[k].rows, (double)cls[k].cols);
                ref_total += ref_cpu[k];
            }
            printf("%-40s %6lldx%-6lld %10.2f %10.2f %10.1f %10.1f %8.0f %.2f\n", cls[k].name,
                   (long long)cls[k].rows, (long long)cls[k].cols, r.wall, r.cpu, wall,
                   ref_cpu[k] > 0 ? ref_cpu[k] : NAN, ref_cpu[k] > 0 ? ref_cpu[k] / r.cpu : NAN,
                   loadavg());
            fflush(stdout);
        }
        at_ckpt_close(c);
        /* The reference at the sampled rate (CPU seconds per dgesdd flop) on every layer: q, o
         * 4096^2; k, v 1024x4096; gate, up, down 14336x4096. */
        const double per_flop = ref_total / flops;
        const double block = 2 * svd_flops(HIDDEN, HIDDEN) + 2 * svd_flops(KV, HIDDEN) +
                             3 * svd_flops(INTER, HIDDEN);
        const double ref_blocks = blocks * block * per_flop;
        const double ref_emb = 2 * svd_flops(VOCAB, HIDDEN) * per_flop;
        printf("reference, extrapolated at %.2f GFLOP/s of dgesdd's flops: %d blocks %.0f CPU s "
               "(%.1f h); the embeddings %.0f s more (it skips them: N > max_N 50000)\n",
               1e-9 / per_flop, blocks, ref_blocks, ref_blocks / 3600, ref_emb);
        if (cpu1 > 0)
            printf("alphatop scan --fast, 1 thread: %.0f CPU s for all %d layers: %.0fx less "
                   "than the reference for its %d\n",
                   cpu1, layers, ref_blocks / cpu1, layers - 2);
        /* alphatop's cost of a layer: a (long x short^2, the Gram product) + b (short^3, the
         * eigenvalues), fitted to q_proj and gate_proj, checked on k_proj and the embedding. */
        const double gq = (double)HIDDEN * HIDDEN * HIDDEN, gg = (double)INTER * HIDDEN * HIDDEN;
        const double a = (fast_cpu[GATE] - fast_cpu[Q]) / (gg - gq),
                     b = (fast_cpu[Q] - a * gq) / ((double)HIDDEN * HIDDEN * HIDDEN);
#define COST(lg, p) (a * (double)(lg) * (double)(p) * (double)(p) + b * pow((double)(p), 3))
        printf("alphatop's model of a layer: %.3g s per long x short^2 + %.3g s per short^3; "
               "k_proj %.2f s (measured %.2f), embedding %.1f s (measured %.1f)\n",
               a, b, COST(HIDDEN, KV), fast_cpu[K], COST(VOCAB, HIDDEN), fast_cpu[EMB]);
        /* Llama-2-70B: 80 blocks of q, o 8192^2; k, v 1024x8192; gate, up, down 28672x8192;
         * embedding and lm_head 32000x8192. */
        const double blk70 = 2 * COST(8192, 8192) + 2 * COST(8192, 1024) + 3 * COST(28672, 8192);
        const double all70 = 80 * blk70 + 2 * COST(32000, 8192);
        printf("Llama-2-70B-shaped, by that model: %.0f CPU s (%.1f h) on one core of this "
               "machine; the largest layer %.0f s; 8 nodes x 32 cores: %.0f s if spread "
               "perfectly\n",
               all70, all70 / 3600, COST(28672, 8192), all70 / 256);
#undef COST
    }
    if (!keep && !existing) {
        char path[1200];
        for (int s = 0; s < m->shards; s++) {
            snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, s + 1, m->shards);
            unlink(path);
        }
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/config.json", dir);
        unlink(path);
        if (rmdir(dir) == 0)
            printf("deleted %s\n", dir);
    } else {
        printf("kept %s\n", dir);
    }
    free(m);
    return all_same ? 0 : 1;
}
