/* SPDX-License-Identifier: Apache-2.0 */
/* watch.c -- `alphatop watch` (the live monitor) and `alphatop replay` (a recorded run). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "engine.h"
#include "plot_out.h"
#include "replay.h"
#include "watch_view.h"
#ifdef AT_MPI
#include "mpi_watch.h"
#endif

static const char watch_about[] =
    "Live monitor: receives weight snapshots from trainers (the alphatop agent) and shows every\n"
    "layer's HTSR alpha as a heatmap, per snapshot. 'alphatop' with no command is this.\n";

static const char watch_notes[] =
    "Runs are recorded unless --no-record: into the --record LOG, else each into its own\n"
    "alphatop-RUN-DATE.atlog in the XDG state directory, $XDG_STATE_HOME/alphatop or else\n"
    "~/.local/state/alphatop (made with mode 0700 if missing). The view's third row shows the\n"
    "log of the run it shows, and the end says where each run went.\n"
    "When the monitor cannot start (an unusable endpoint, key, --base or --record file, a\n"
    "--stop-on rule it cannot read), it says why and exits 2.\n"
    "Under mpirun or srun (a build with MPI), rank 0 is the monitor, headless, and the other\n"
    "ranks analyse its layers, each on --threads threads; watch it live from any terminal\n"
    "with 'alphatop replay --follow LOG' (docs/cluster.md).\n";

static const char replay_about[] =
    "Shows a recorded run log (alphatop watch --record) in the live view, with a time slider:\n"
    "'<' and '>' move it one snapshot, End shows everything. A truncated last record (the\n"
    "monitor was killed) is ignored. With --follow, the log is read as it grows (like tail -f):\n"
    "a live view of a monitor that runs elsewhere without a terminal, e.g. rank 0 of an\n"
    "mpirun job started with 'alphatop watch --headless --record LOG'.\n";

static volatile int interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* After the view: where its runs were recorded, on stderr. */
static void say_recorded(const at_model *model)
{
    int own = 0;
    for (int i = 0; i < at_model_num_runs(model); i++) {
        const at_run_info *ri = at_model_run(model, i);
        if (ri->log[0]) {
            fprintf(stderr, "alphatop: run %s recorded to %s\n", ri->id, ri->log);
            own = 1;
        }
    }
    const char *rec = at_model_state(model)->record;
    if (!own && rec[0] && at_model_num_runs(model) > 0)
        fprintf(stderr, "alphatop: recorded to %s\n", rec);
}

/* --plot DIR: where the view's `e` key writes the selected layer's ESD picture. */
#define PLOT_OPT(dir)                                                                              \
    {                                                                                              \
        .name = "plot", .kind = AT_ARG_STRING, .value = &(dir), .meta = "DIR",                     \
        .help = "where the view's e key saves the selected layer's spectrum (ESD) as "             \
                "alphatop-LAYER-STEP.svg (default: the current directory); DIR is created if "     \
                "missing"                                                                          \
    }

/* --plot's checks: the terminal view's (not --headless), its directory made. Returns -1 to go
 * on, else the exit code. */
static int plot_dir_check(const char *cmd, const char *dir, int headless)
{
    if (dir && headless)
        return at_args_error(cmd, "--plot is for the terminal view's e key, not --headless");
    if (dir && at_cmd_out_dir(cmd, "--plot", dir) < 0)
        return AT_EXIT_USAGE;
    return -1;
}

/* --threads' upper bound: more than any machine this runs on has cores. */
#define MAX_THREADS 256

/* The monitor, in a process on its own or as MPI's rank 0 (remote: the other ranks' analyses,
 * else NULL). */
static int watch_main(int argc, char **argv, const struct at_worker_remote *remote)
{
    at_engine_opts o;
    at_engine_opts_default(&o);
    int headless = 0, no_record = 0, exact = 0, fast = 0, nargs = 0;
    int64_t threads = o.threads, max_runs = o.max_runs;
    const char *plot_dir = NULL;
    at_arg_list rules = {NULL, 0};
    const at_arg_opt opts[] = {
        {.name = "listen",
         .kind = AT_ARG_STRING,
         .value = &o.endpoint,
         .meta = "ENDPOINT",
         .help = "ZeroMQ endpoint to listen on (default: $ALPHATOP_ENDPOINT, else "
                 "ipc:///tmp/alphatop-UID.ipc, where trainers look by default)"},
        {.name = "curve-key",
         .kind = AT_ARG_STRING,
         .value = &o.curve_key,
         .meta = "FILE",
         .help = "CurveZMQ: this monitor's key file (from alphatop-keygen), default "
                 "$ALPHATOP_CURVE_KEY; with --curve-allow, required on an endpoint other machines "
                 "may reach (docs/protocol.md section 8)"},
        {.name = "curve-allow",
         .kind = AT_ARG_STRING,
         .value = &o.curve_allow,
         .meta = "FILE",
         .help = "CurveZMQ: the trainers' public keys allowed to connect, one per line, default "
                 "$ALPHATOP_CURVE_ALLOW"},
        {.name = "insecure",
         .kind = AT_ARG_FLAG,
         .value = &o.allow_insecure,
         .help = "listen without CurveZMQ on an endpoint other machines may reach, whatever the "
                 "transport: tcp, ws or wss beyond loopback, pgm, epgm, vmci, tipc (anyone who "
                 "reaches it can send snapshots and read stop requests)"},
        {.name = "headless",
         .kind = AT_ARG_FLAG,
         .value = &headless,
         .help = "no terminal UI: JSON lines on stdout, one per layer result and one per event "
                 "(see docs/monitor.md)"},
        {.name = "record",
         .kind = AT_ARG_STRING,
         .value = &o.record,
         .meta = "LOG",
         .help = "record every run into LOG (default: one log per run in the state directory, "
                 "see below)"},
        {.name = "no-record", .kind = AT_ARG_FLAG, .value = &no_record, .help = "do not record"},
        {.name = "record-weights",
         .kind = AT_ARG_FLAG,
         .value = &o.record_weights,
         .help = "also record the raw weights of every snapshot (large)"},
        {.name = "record-spectra",
         .kind = AT_ARG_FLAG,
         .value = &o.record_spectra,
         .help = "also record every layer's eigenvalues"},
        {.name = "stop-on",
         .kind = AT_ARG_LIST,
         .value = &rules,
         .meta = "RULE",
         .help = "stop the trainer when RULE holds, then exit with code 3; RULE is collapse, "
                 "burnt:FRACTION, mean-alpha-below:X or scalar:NAME-drop:X (docs/detection.md)"},
        {.name = "stop-timeout",
         .kind = AT_ARG_DOUBLE,
         .value = &o.stop_ack_timeout,
         .meta = "S",
         .help = "seconds to wait for the trainer to acknowledge a stop",
         .flags = AT_ARG_SHOW_DEFAULT},
        {.name = "base",
         .kind = AT_ARG_STRING,
         .value = &o.base,
         .meta = "CHECKPOINT",
         .help = "base weights (.safetensors/.npy) for delta mode: every layer is also analysed as "
                 "W - W_base (a trainer can send its base instead)"},
        {.name = "exact",
         .kind = AT_ARG_FLAG,
         .value = &exact,
         .help = "exact analysis: every layer's full spectrum, equal to the reference's (default)"},
        {.name = "fast",
         .kind = AT_ARG_FLAG,
         .value = &fast,
         .help =
             "fast analysis: float32 spectra warm-started from the previous snapshot, under a time "
             "budget (newest snapshot of a layer wins; no traps, no spectra in the detail view)"},
        {.name = "threads",
         .kind = AT_ARG_INT,
         .value = &threads,
         .meta = "N",
         .help = "analysis threads, each analysing one layer at a time with single-threaded BLAS "
                 "(default: every core; fewer leave cores to a trainer on this machine); under "
                 "mpirun, each analysing rank's (default: the CPUs it may run on)",
         .min = 1,
         .max = MAX_THREADS},
        {.name = "max-runs",
         .kind = AT_ARG_INT,
         .value = &max_runs,
         .meta = "N",
         .help = "runs kept at most: a new run takes the place of the run that ended first, and "
                 "is refused (a warning, counted) while all N are live (docs/monitor.md)",
         .flags = AT_ARG_SHOW_DEFAULT,
         .min = 1,
         .max = 1 << 20},
        {.name = "max-snapshots",
         .kind = AT_ARG_INT,
         .value = &o.max_snapshots,
         .help = "exit after N complete snapshots analysed"},
        PLOT_OPT(plot_dir),
    };
    const at_args_spec spec = {"watch", "[OPTIONS]", watch_about, watch_notes,    NULL,
                               0,       0,           opts,        AT_ARGS_N(opts)};
    interrupted = 0; /* `demo` may run watch again after a failed trainer */
    int rc = at_args_handle(&spec, argc, argv, &nargs);
    if (rc < 0 && exact && fast)
        rc = at_args_error("watch", "--exact and --fast exclude each other");
    if (rc < 0 && no_record && o.record)
        rc = at_args_error("watch", "--record and --no-record exclude each other");
    if (rc < 0)
        rc = plot_dir_check("watch", plot_dir, headless);
    if (rc >= 0) {
        free(rules.items);
        return rc;
    }
    if (no_record)
        o.record = "-";
    if (remote && !headless) {
        /* Under mpirun or srun this process has no terminal to draw on. */
        fputs("alphatop watch: MPI: rank 0 runs headless; see it live with 'alphatop replay "
              "--follow LOG' (watch --record LOG)\n",
              stderr);
        headless = 1;
    }
    o.remote = remote;
    o.fast = fast;
    o.threads = (int)threads;
    o.max_runs = (int)max_runs;
    o.rules = rules.items;
    o.n_rules = rules.n;
    o.json_out = headless ? stdout : NULL;
    /* Notes on stderr would scribble over the view: it says where runs go, and so does the
     * end (say_recorded). */
    o.notes = headless ? stderr : NULL;

    at_model *model = at_model_new();
    char err[512];
    at_engine *engine = model ? at_engine_new(&o, model, err, sizeof err) : NULL;
    if (!engine) {
        fprintf(stderr, "alphatop watch: %s\n", model ? err : "out of memory");
        at_model_free(model);
        free(rules.items);
        return AT_EXIT_USAGE;
    }
    catch_signals();
    if (headless) {
        fprintf(stderr, "alphatop: listening on %s\n", at_engine_endpoint(engine));
        rc = at_engine_run(engine, &interrupted);
    } else {
        rc = at_watch_view_run(model, engine, plot_dir, &interrupted);
        say_recorded(model);
    }
    at_engine_free(engine);
    at_model_free(model);
    free(rules.items);
    return rc;
}

int cmd_watch(int argc, char **argv)
{
#ifdef AT_MPI
    /* Under an MPI launcher, rank 0 is the monitor and the other ranks analyse its layers. */
    watch_mpi *mpi = watch_mpi_start();
    if (mpi && watch_mpi_rank(mpi) > 0)
        return watch_mpi_serve(mpi);
    const int rc = watch_main(argc, argv, mpi ? watch_mpi_remote(mpi) : NULL);
    watch_mpi_finish(mpi);
    return rc;
#else
    return watch_main(argc, argv, NULL);
#endif
}

/* replay --follow: the records appended to path from now on, on stdout or in the view, until
 * interrupted (or quit). */
static int follow(const char *path, int headless, const char *plot_dir)
{
    char err[600];
    at_replay *log = at_replay_open(path, 1, NULL, err, sizeof err);
    if (!log) {
        fprintf(stderr, "alphatop replay: %s\n", err);
        return AT_EXIT_PARTIAL;
    }
    catch_signals();
    int rc = AT_EXIT_OK, n = 0;
    at_model *model = NULL;
    if (headless) {
        while (!interrupted && (n = at_replay_read_print(log, stdout, 4096)) >= 0)
            if (n == 0)
                usleep(100000); /* what tail -f does: look again a little later */
        rc = n < 0 ? AT_EXIT_PARTIAL : AT_EXIT_OK;
    } else if ((model = at_model_new())) {
        snprintf(at_model_state(model)->record, sizeof at_model_state(model)->record, "%s", path);
        rc = at_watch_view_follow(model, log, plot_dir, &interrupted);
        at_model_free(model);
    } else {
        fputs("alphatop replay: out of memory\n", stderr);
        at_replay_close(log);
        return AT_EXIT_PARTIAL;
    }
    if (rc == AT_EXIT_PARTIAL)
        fprintf(stderr, "alphatop replay: %s: cannot read it any further\n", path);
    if (*at_replay_note(log))
        fprintf(stderr, "alphatop replay: %s: %s\n", path, at_replay_note(log));
    at_replay_close(log);
    return rc;
}

int cmd_replay(int argc, char **argv)
{
    int headless = 0, follow_log = 0, nargs = 0;
    const char *plot_dir = NULL;
    const at_arg_opt opts[] = {
        {.name = "headless",
         .kind = AT_ARG_FLAG,
         .value = &headless,
         .help = "print the recorded JSON lines instead (what watch --headless printed)"},
        {.name = "follow",
         .kind = AT_ARG_FLAG,
         .value = &follow_log,
         .help = "keep reading as the log grows (a monitor still records it), until q or "
                 "Ctrl-C; the slider at its end follows the newest snapshot"},
        PLOT_OPT(plot_dir),
    };
    const at_args_spec spec = {"replay",
                               "[--headless] [--follow] [--plot DIR] LOG",
                               replay_about,
                               NULL,
                               "LOG",
                               1,
                               1,
                               opts,
                               AT_ARGS_N(opts)};
    int rc = at_args_handle(&spec, argc, argv, &nargs);
    if (rc < 0)
        rc = plot_dir_check("replay", plot_dir, headless);
    if (rc >= 0)
        return rc;
    const char *path = argv[1];
    if (follow_log)
        return follow(path, headless, plot_dir);
    char note[600];
    int n;
    if (headless) {
        n = at_replay_print(stdout, path, note, sizeof note);
        if (n < 0) {
            fprintf(stderr, "alphatop replay: %s\n", note);
            return AT_EXIT_PARTIAL;
        }
        if (*note)
            fprintf(stderr, "alphatop replay: %s: %s\n", path, note);
        return AT_EXIT_OK;
    }
    at_model *model = at_model_new();
    if (!model) {
        fputs("alphatop replay: out of memory\n", stderr);
        return AT_EXIT_PARTIAL;
    }
    n = at_replay_load(model, path, note, sizeof note);
    if (n < 0) {
        fprintf(stderr, "alphatop replay: %s\n", note);
        at_model_free(model);
        return AT_EXIT_PARTIAL;
    }
    if (*note)
        at_model_add_event(model, -1, -1, -1, AT_EVENT_INFO, note);
    catch_signals();
    rc = at_watch_view_run(model, NULL, plot_dir, &interrupted);
    at_model_free(model);
    if (*note)
        fprintf(stderr, "alphatop replay: %s: %s\n", path, note);
    return rc;
}
