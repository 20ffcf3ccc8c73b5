/* SPDX-License-Identifier: Apache-2.0 */
/* mon_tmux.h -- helpers of the monitor's tmux tests: a program in a detached tmux session on a
 * private server (its own -L socket per start, so parallel tests and a server still exiting
 * after kill-server never meet; no config; fixed size; UTF-8, 256 colours), its screen
 * through capture-pane, waits with deadlines; and the seeded three-layer trainer the tests
 * publish through the C agent. The waits fail the running cmocka test when time runs out. */
#ifndef AT_TEST_MON_TMUX_H
#define AT_TEST_MON_TMUX_H

#include <stdint.h>

#include "alphatop/agent.h"
#include "alphatop/rng.h"

/* Seconds any wait gives the screen or a program. */
#define TMX_TIMEOUT 30.0

/* One tmux server with one session running one program. */
typedef struct tmx {
    char sock[64];    /* the server's -L name */
    char status[256]; /* the pane's shell writes the program's exit status here */
} tmx;

/* Starts cmdline (a shell command line) in a new server's session at cols x rows. The pane
 * stays when the program ends (what it printed last can be captured) until tmx_kill. */
void tmx_start(tmx *t, int cols, int rows, const char *cmdline);

/* Runs a tmux command (printf-style arguments after `tmux -L SOCK -f /dev/null`) on t's server;
 * returns its exit status. */
int tmx_cmd(tmx *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The screen as text (escapes: with its colour and attribute escapes). Caller frees. */
char *tmx_capture(tmx *t, int escapes);

/* Waits until the screen shows needle; returns that capture (caller frees) or fails the test,
 * printing the screen. */
char *tmx_wait_for(tmx *t, const char *needle, int escapes);

/* Waits until the screen no longer shows needle, or fails the test. */
void tmx_wait_gone(tmx *t, const char *needle);

/* Waits for the program to exit; returns its exit status, or fails the test. */
int tmx_wait_exit(tmx *t);

/* Ends the server and removes the status file. */
void tmx_kill(tmx *t);

/* A capture with escapes (tmx_capture(t, 1)) made row-independent: capture-pane -e carries a
 * style over to the next row, so the same row can read differently after different rows.
 * Each row here starts with its first cell's whole style, "{fg,bg,attrs}", and has one again
 * wherever the style changes; colours are palette indices (-1 the default), attrs the SGR
 * attribute bits. Caller frees. */
char *tmx_cells(const char *escaped);

/* The line of capture c that starts with prefix, copied into out (cap bytes, without the
 * newline); 0 when there is none. */
int tmx_line(const char *c, const char *prefix, char *out, size_t cap);

/* An agent for run on endpoint ep as the tmux tests' trainer has it: model class "tmux-mlp",
 * a snapshot every TMX_EVERY steps. NULL when at_agent_new fails. Caller owns return value. */
enum { TMX_EVERY = 10 };
at_agent *tmx_agent(const char *run, const char *ep);

/* The trainer of the tmux tests: layers enc.fc1 (200 x 100), enc.fc2 (150 x 150) and head
 * (100 x 40), normal weights from r. */
enum { TMX_LAYERS = 3 };
extern const char *const tmx_layer_names[TMX_LAYERS];

/* Publishes one snapshot of those layers at step; AT_OK or the first failing call's status
 * (AT_ERR_AGAIN: paused or dropped). */
int tmx_publish(at_agent *a, int64_t step, at_rng *r);

#endif
