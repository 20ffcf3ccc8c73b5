/* SPDX-License-Identifier: Apache-2.0 */
/* mon_util.h -- helpers for the monitor's end-to-end tests: run `alphatop` as a child with its
 * stdout on a pipe, read its JSON lines with deadlines, wait for its exit. */
#ifndef AT_TEST_MON_UTIL_H
#define AT_TEST_MON_UTIL_H

#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

typedef struct mon {
    pid_t pid;
    int fd;          /* read end of the child's stdout */
    char buf[65536]; /* bytes read but not yet returned as lines */
    size_t len;
    cJSON *seen; /* every line returned so far (array, owned) */
    char *text;  /* the same lines as printed, newline-terminated (owned) */
    size_t text_len;
} mon;

/* Path of the alphatop binary in the build tree. */
const char *mon_binary(void);

/* A unique ipc endpoint for this test process: ipc:///tmp/at-mon-TAG-PID.ipc. */
void mon_endpoint(char *buf, size_t cap, const char *tag);

/* A run log path for this test process, /tmp/at-mon-TAG-PID.atlog, removed if it exists. */
void mon_logpath(char *buf, size_t cap, const char *tag);

/* Starts alphatop with args (NULL-terminated, without argv[0]) and stdout piped. 0 or -1. */
int mon_start(mon *m, const char *const *args);

/* As mon_start, with another program (a path) in front of args: e.g. mpirun. */
int mon_start_prog(mon *m, const char *prog, const char *const *args);

/* Starts `alphatop watch --headless --no-record --listen endpoint` followed by extra (more
 * arguments, NULL-terminated; NULL for none): a monitor that records nothing and prints its
 * JSON lines. 0, or -1 (also when extra holds more than 42 arguments). */
int mon_watch(mon *m, const char *endpoint, const char *const *extra);

/* Next JSON line within timeout seconds (also appended to m->seen). Borrowed (owned by
 * m->seen); NULL on timeout, end of output, or a line that is not JSON (test failure). */
const cJSON *mon_next(mon *m, double timeout);

/* Reads lines until none comes within timeout seconds or the output ends (the child exited,
 * or a line is not JSON); returns how many it read. Like mon_next, keeps them in m->seen. */
int mon_drain(mon *m, double timeout);

/* Reads lines until one has "type" == type and (kind NULL or "kind" == kind); NULL on timeout.
 * Borrowed. */
const cJSON *mon_wait_for(mon *m, const char *type, const char *kind, double timeout);

/* Waits up to timeout seconds for the child to exit; SIGKILLs it after that. Returns the exit
 * code, 128 + signal if killed by one, or -1 if it had to be killed. Closes the pipe and frees
 * m->seen and m->text. */
int mon_finish(mon *m, double timeout);

/* Runs alphatop with args to completion (timeout seconds), stdout into out (malloc'd,
 * NUL-terminated; may be NULL). Returns the exit code as mon_finish. */
int mon_run(const char *const *args, char **out, double timeout);

/* Sleeps seconds. */
void mon_sleep(double seconds);

/* String field of a JSON object, or "". */
const char *mon_str(const cJSON *o, const char *key);

/* Number field, or NAN. */
double mon_num(const cJSON *o, const char *key);

#endif
