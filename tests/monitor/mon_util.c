/* SPDX-License-Identifier: Apache-2.0 */
/* mon_util.c -- run alphatop as a child process and read its JSON lines (see mon_util.h). */
#include "mon_util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void mon_sleep(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

const char *mon_binary(void)
{
    return AT_BINARY_DIR "/tui/alphatop";
}

void mon_endpoint(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "ipc:///tmp/at-mon-%s-%d.ipc", tag, (int)getpid());
}

void mon_logpath(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "/tmp/at-mon-%s-%d.atlog", tag, (int)getpid());
    unlink(buf);
}

static pid_t spawn(const char *prog, const char *const *args, int *out_fd)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = prog;
    for (; args[n - 1] && n < 63; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* A failed test never leaves a monitor behind: it dies with the test process. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    *out_fd = p[0];
    return pid;
}

int mon_start(mon *m, const char *const *args)
{
    return mon_start_prog(m, mon_binary(), args);
}

int mon_start_prog(mon *m, const char *prog, const char *const *args)
{
    memset(m, 0, sizeof *m);
    m->seen = cJSON_CreateArray();
    m->pid = spawn(prog, args, &m->fd);
    return m->pid > 0 ? 0 : -1;
}

int mon_watch(mon *m, const char *endpoint, const char *const *extra)
{
    const char *args[48] = {"watch", "--headless", "--no-record", "--listen", endpoint};
    size_t n = 5;
    for (size_t i = 0; extra && extra[i]; i++) {
        if (n + 1 >= sizeof args / sizeof args[0])
            return -1;
        args[n++] = extra[i];
    }
    args[n] = NULL;
    return mon_start(m, args);
}

/* Takes one line out of the buffer into line (cap bytes); 1 if there was a whole line. */
static int take_line(mon *m, char *line, size_t cap)
{
    char *nl = memchr(m->buf, '\n', m->len);
    if (!nl)
        return 0;
    size_t n = (size_t)(nl - m->buf);
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(line, m->buf, k);
    line[k] = '\0';
    memmove(m->buf, nl + 1, m->len - n - 1);
    m->len -= n + 1;
    return 1;
}

const cJSON *mon_next(mon *m, double timeout)
{
    static char line[65536];
    double deadline = now() + timeout;
    while (!take_line(m, line, sizeof line)) {
        double left = deadline - now();
        if (left <= 0 || m->len == sizeof m->buf)
            return NULL;
        struct pollfd pfd = {.fd = m->fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        ssize_t r = read(m->fd, m->buf + m->len, sizeof m->buf - m->len);
        if (r <= 0)
            return NULL;
        m->len += (size_t)r;
    }
    cJSON *o = cJSON_Parse(line);
    if (!o) {
        fprintf(stderr, "not JSON: %s\n", line);
        return NULL;
    }
    cJSON_AddItemToArray(m->seen, o);
    size_t n = strlen(line);
    m->text = realloc(m->text, m->text_len + n + 2);
    memcpy(m->text + m->text_len, line, n);
    m->text_len += n;
    m->text[m->text_len++] = '\n';
    m->text[m->text_len] = '\0';
    return o;
}

int mon_drain(mon *m, double timeout)
{
    int n = 0;
    while (mon_next(m, timeout))
        n++;
    return n;
}

const cJSON *mon_wait_for(mon *m, const char *type, const char *kind, double timeout)
{
    double deadline = now() + timeout;
    const cJSON *o;
    while ((o = mon_next(m, deadline - now())))
        if (!strcmp(mon_str(o, "type"), type) && (!kind || !strcmp(mon_str(o, "kind"), kind)))
            return o;
    return NULL;
}

static int wait_child(pid_t pid, double timeout)
{
    double deadline = now() + timeout;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        mon_sleep(0.01);
    }
}

int mon_finish(mon *m, double timeout)
{
    int rc = wait_child(m->pid, timeout);
    close(m->fd);
    cJSON_Delete(m->seen);
    m->seen = NULL;
    free(m->text);
    m->text = NULL;
    return rc;
}

int mon_run(const char *const *args, char **out, double timeout)
{
    int fd;
    pid_t pid = spawn(mon_binary(), args, &fd);
    if (pid < 0)
        return -1;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    double deadline = now() + timeout;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0) {
            if (now() > deadline)
                break;
            continue;
        }
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(fd);
    int rc = wait_child(pid, deadline - now() > 1 ? deadline - now() : 1);
    if (out)
        *out = buf;
    else
        free(buf);
    return rc;
}

const char *mon_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

double mon_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}
