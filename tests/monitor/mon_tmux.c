/* SPDX-License-Identifier: Apache-2.0 */
/* mon_tmux.c -- a private tmux server per program, and the tmux tests' trainer (mon_tmux.h). */
#include "mon_tmux.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mon_util.h"

int tmx_cmd(tmx *t, const char *fmt, ...)
{
    char args[1024], cmd[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "tmux -L %s -f /dev/null %s >/dev/null 2>&1", t->sock, args);
    return system(cmd);
}

char *tmx_capture(tmx *t, int escapes)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "tmux -L %s -f /dev/null capture-pane -p %s -t m 2>/dev/null",
             t->sock, escapes ? "-e" : "");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += r;
        if (cap - len < 4096)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    pclose(p);
    return buf;
}

char *tmx_wait_for(tmx *t, const char *needle, int escapes)
{
    for (double s = 0; s < TMX_TIMEOUT; s += 0.1) {
        char *c = tmx_capture(t, escapes);
        if (strstr(c, needle))
            return c;
        free(c);
        mon_sleep(0.1);
    }
    char *c = tmx_capture(t, 0);
    fprintf(stderr, "pane never showed '%s'; it shows:\n%s\n", needle, c);
    free(c);
    fail();
    return NULL;
}

void tmx_wait_gone(tmx *t, const char *needle)
{
    for (double s = 0; s < TMX_TIMEOUT; s += 0.1) {
        char *c = tmx_capture(t, 0);
        int gone = !strstr(c, needle);
        free(c);
        if (gone)
            return;
        mon_sleep(0.1);
    }
    char *c = tmx_capture(t, 0);
    fprintf(stderr, "pane still shows '%s':\n%s\n", needle, c);
    free(c);
    fail();
}

int tmx_wait_exit(tmx *t)
{
    /* The shell wrapping the program writes its status: tmux's own pane_dead_status is not
     * always known. */
    for (double s = 0; s < TMX_TIMEOUT; s += 0.1) {
        FILE *f = fopen(t->status, "r");
        int status = -1;
        if (f) {
            int n = fscanf(f, "%d", &status);
            fclose(f);
            if (n == 1)
                return status;
        }
        mon_sleep(0.1);
    }
    fail_msg("the program in the pane did not exit");
    return -1;
}

void tmx_start(tmx *t, int cols, int rows, const char *cmdline)
{
    /* A socket of its own per start: a new-session that reaches a server still exiting after
     * kill-server fails. The pane stays after the program, showing what it left, until
     * tmx_kill. */
    static int starts;
    snprintf(t->sock, sizeof t->sock, "at-mon-%d-%d", (int)getpid(), ++starts);
    snprintf(t->status, sizeof t->status, "/tmp/at-mon-tmux-%d-%d.status", (int)getpid(), starts);
    unlink(t->status);
    assert_int_equal(tmx_cmd(t,
                             "new-session -d -s m -x %d -y %d "
                             "'env LANG=C.UTF-8 TERM=screen-256color %s; echo $? >%s; sleep 600'",
                             cols, rows, cmdline, t->status),
                     0);
}

void tmx_kill(tmx *t)
{
    tmx_cmd(t, "kill-server");
    unlink(t->status);
}

/* A cell's style as SGR escapes leave it. */
typedef struct sgr {
    int fg, bg;    /* palette index, 0x1000000 | RGB for true colour; -1 the default */
    unsigned attr; /* bit n: SGR attribute n (1 bold, 2 dim, 3 italic, 4 underline, 7 reverse) */
} sgr;

/* Applies the SGR parameters of one escape, p[0..n), to *st. */
static void sgr_apply(sgr *st, const int *p, int n)
{
    if (n == 0)
        *st = (sgr){-1, -1, 0};
    for (int i = 0; i < n; i++) {
        int c = p[i];
        int *col = c == 38 || (c >= 30 && c <= 37) || (c >= 90 && c <= 97) ? &st->fg : &st->bg;
        if (c == 0) {
            *st = (sgr){-1, -1, 0};
        } else if (c >= 1 && c <= 9) {
            st->attr |= 1u << c;
        } else if (c == 22) {
            st->attr &= ~(1u << 1 | 1u << 2);
        } else if (c >= 21 && c <= 29) {
            st->attr &= ~(1u << (c - 20));
        } else if ((c == 38 || c == 48) && i + 2 < n && p[i + 1] == 5) {
            *col = p[i + 2];
            i += 2;
        } else if ((c == 38 || c == 48) && i + 4 < n && p[i + 1] == 2) {
            *col = 0x1000000 | p[i + 2] << 16 | p[i + 3] << 8 | p[i + 4];
            i += 4;
        } else if (c == 39 || c == 49) {
            *col = -1;
        } else if ((c >= 30 && c <= 37) || (c >= 40 && c <= 47)) {
            *col = c % 10;
        } else if ((c >= 90 && c <= 97) || (c >= 100 && c <= 107)) {
            *col = c % 10 + 8;
        }
    }
}

char *tmx_cells(const char *e)
{
    size_t cap = 8 * strlen(e) + 64, n = 0;
    char *out = malloc(cap);
    sgr st = {-1, -1, 0}, shown = st;
    int fresh = 1; /* at the start of a row: its first cell says its style */
    for (const char *s = e; *s;) {
        if (s[0] == '\033' && s[1] == '[') {
            int p[32], np = 0, v = 0, any = 0;
            const char *q = s + 2;
            for (; (*q >= '0' && *q <= '9') || *q == ';'; q++) {
                if (*q == ';') {
                    if (np < 32)
                        p[np++] = v;
                    v = any = 0;
                } else {
                    v = 10 * v + (*q - '0');
                    any = 1;
                }
            }
            if ((any || q > s + 2) && np < 32)
                p[np++] = v;
            if (*q == 'm')
                sgr_apply(&st, p, np);
            s = *q ? q + 1 : q;
            continue;
        }
        if (*s == '\n') {
            out[n++] = '\n';
            fresh = 1;
            s++;
            continue;
        }
        if (fresh || memcmp(&st, &shown, sizeof st) != 0) {
            n += (size_t)snprintf(out + n, cap - n, "{%d,%d,%u}", st.fg, st.bg, st.attr);
            shown = st;
            fresh = 0;
        }
        out[n++] = *s++;
    }
    out[n] = '\0';
    return out;
}

int tmx_line(const char *c, const char *prefix, char *out, size_t cap)
{
    size_t n = strlen(prefix);
    for (const char *l = c; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, prefix, n) == 0) {
            snprintf(out, cap, "%.*s", (int)strcspn(l, "\n"), l);
            return 1;
        }
    return 0;
}

at_agent *tmx_agent(const char *run, const char *ep)
{
    at_agent_opts o;
    at_agent_opts_default(&o);
    o.model = "tmux-mlp";
    o.interval = TMX_EVERY;
    /* at close the agent waits for the monitor to acknowledge its goodbye: on a loaded machine
     * a monitor may take longer than the default 2 s to read up to it, and the screens wait
     * for its ENDED */
    o.linger_ms = (int64_t)(TMX_TIMEOUT * 1000);
    return at_agent_new(run, ep, &o);
}

const char *const tmx_layer_names[TMX_LAYERS] = {"enc.fc1", "enc.fc2", "head"};

int tmx_publish(at_agent *a, int64_t step, at_rng *r)
{
    static const int64_t shapes[TMX_LAYERS][2] = {{200, 100}, {150, 150}, {100, 40}};
    int rc = at_agent_snapshot_begin(a, step);
    for (int l = 0; l < TMX_LAYERS && rc == AT_OK; l++) {
        size_t n = (size_t)(shapes[l][0] * shapes[l][1]);
        float *w = malloc(n * sizeof *w);
        if (!w)
            return AT_ERR_NOMEM;
        for (size_t i = 0; i < n; i++)
            w[i] = (float)at_rng_normal(r);
        rc = at_agent_publish(a, tmx_layer_names[l], AT_PROTO_KIND_LINEAR, AT_PROTO_F32, 2,
                              shapes[l], w, 0);
        free(w);
    }
    int end = at_agent_snapshot_end(a);
    return rc == AT_OK ? end : rc;
}
