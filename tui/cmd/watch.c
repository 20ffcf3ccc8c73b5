/* cli_watch.c -- `alphatop watch` (the live monitor) and `alphatop replay` (a recorded run). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "engine.h"
#include "replay.h"
#include "watch_view.h"

static const char watch_usage[] =
    "Usage: alphatop watch [OPTIONS]\n"
    "\n"
    "Live monitor: receives weight snapshots from trainers (the alphatop agent) and shows every\n"
    "layer's HTSR alpha as a heatmap, per snapshot. 'alphatop' with no command is this.\n"
    "\n"
    "Options:\n"
    "  --listen ENDPOINT   ZeroMQ endpoint to listen on (default: $ALPHATOP_ENDPOINT, else\n"
    "                      ipc:///tmp/alphatop-UID.ipc, where trainers look by default)\n"
    "  --curve-key FILE    CurveZMQ: this monitor's key file (from alphatop-keygen); with\n"
    "  --curve-allow FILE  the trainers' public keys allowed to connect (one per line).\n"
    "                      Default: $ALPHATOP_CURVE_KEY / $ALPHATOP_CURVE_ALLOW; required\n"
    "                      for tcp on a non-loopback address (docs/protocol.md section 8)\n"
    "  --insecure          allow plain tcp on a non-loopback address (anyone who reaches it\n"
    "                      can send snapshots and read stop requests)\n"
    "  --headless          no terminal UI: JSON lines on stdout, one per layer result and one\n"
    "                      per event (see docs/monitor.md)\n"
    "  --record LOG        record every run into LOG (default: one log per run,\n"
    "                      ./alphatop-RUN-DATE.atlog)\n"
    "  --no-record         do not record\n"
    "  --record-weights    also record the raw weights of every snapshot (large)\n"
    "  --record-spectra    also record every layer's eigenvalues\n"
    "  --stop-on RULE      stop the trainer when RULE holds, then exit with code 3; repeatable.\n"
    "                      RULE: collapse | burnt:FRACTION | mean-alpha-below:X |\n"
    "                      scalar:NAME-drop:X (see docs/detection.md)\n"
    "  --stop-timeout S    seconds to wait for the trainer to acknowledge a stop (default 10)\n"
    "  --base CHECKPOINT   base weights (.safetensors/.npy) for delta mode: every layer is also\n"
    "                      analysed as W - W_base (a trainer can send its base instead)\n"
    "  --exact             exact analysis: every layer's full spectrum, equal to the\n"
    "                      reference's (default)\n"
    "  --fast              fast analysis: float32 spectra warm-started from the previous\n"
    "                      snapshot, under a time budget (newest snapshot of a layer wins;\n"
    "                      no traps, no spectra in the detail view)\n"
    "  --threads N         OpenBLAS threads of the analysis (default 1: the other core stays\n"
    "                      with a trainer on this machine; raise it when the trainer runs\n"
    "                      elsewhere)\n"
    "  --max-snapshots N   exit after N analysed snapshots\n"
    "  -h, --help          this help\n"
    "\n"
    "Exit status: 0 done; 2 usage error; 3 a --stop-on rule fired (after telling the trainer).\n";

static const char replay_usage[] =
    "Usage: alphatop replay [--headless] LOG\n"
    "\n"
    "Shows a recorded run log (alphatop watch --record) in the live view, with a time slider:\n"
    "'<' and '>' move it one snapshot, End shows everything. A truncated last record (the\n"
    "monitor was killed) is ignored.\n"
    "\n"
    "Options:\n"
    "  --headless   print the recorded JSON lines instead (what watch --headless printed)\n"
    "  -h, --help   this help\n";

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

/* --threads' upper bound: more than any machine this runs on has cores. */
#define MAX_THREADS 256

static int parse_count(const char *s, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0)
        return -1;
    *out = v;
    return 0;
}

int cmd_watch(int argc, char **argv)
{
    enum {
        O_LISTEN = 256,
        O_CURVE_KEY,
        O_CURVE_ALLOW,
        O_INSECURE,
        O_HEADLESS,
        O_RECORD,
        O_NO_RECORD,
        O_WEIGHTS,
        O_SPECTRA,
        O_STOP_ON,
        O_STOP_TIMEOUT,
        O_BASE,
        O_EXACT,
        O_FAST,
        O_THREADS,
        O_MAX
    };
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"curve-key", required_argument, NULL, O_CURVE_KEY},
        {"curve-allow", required_argument, NULL, O_CURVE_ALLOW},
        {"insecure", no_argument, NULL, O_INSECURE},
        {"headless", no_argument, NULL, O_HEADLESS},
        {"record", required_argument, NULL, O_RECORD},
        {"no-record", no_argument, NULL, O_NO_RECORD},
        {"record-weights", no_argument, NULL, O_WEIGHTS},
        {"record-spectra", no_argument, NULL, O_SPECTRA},
        {"stop-on", required_argument, NULL, O_STOP_ON},
        {"stop-timeout", required_argument, NULL, O_STOP_TIMEOUT},
        {"base", required_argument, NULL, O_BASE},
        {"exact", no_argument, NULL, O_EXACT},
        {"fast", no_argument, NULL, O_FAST},
        {"threads", required_argument, NULL, O_THREADS},
        {"max-snapshots", required_argument, NULL, O_MAX},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    at_engine_opts o;
    at_engine_opts_default(&o);
    int headless = 0, c;
    const char **rules = calloc((size_t)argc + 1, sizeof *rules);
    if (!rules)
        return AT_EXIT_USAGE;
    optind = 1;
    opterr = 0;
    interrupted = 0; /* `demo` may run watch again after a failed trainer */
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_LISTEN:
            o.endpoint = optarg;
            break;
        case O_CURVE_KEY:
            o.curve_key = optarg;
            break;
        case O_CURVE_ALLOW:
            o.curve_allow = optarg;
            break;
        case O_INSECURE:
            o.allow_insecure = 1;
            break;
        case O_HEADLESS:
            headless = 1;
            break;
        case O_RECORD:
            o.record = optarg;
            break;
        case O_NO_RECORD:
            o.record = "-";
            break;
        case O_WEIGHTS:
            o.record_weights = 1;
            break;
        case O_SPECTRA:
            o.record_spectra = 1;
            break;
        case O_STOP_ON:
            rules[o.n_rules++] = optarg;
            break;
        case O_STOP_TIMEOUT: {
            char *end;
            o.stop_ack_timeout = strtod(optarg, &end);
            if (*end || !(o.stop_ack_timeout >= 0)) {
                fprintf(stderr, "alphatop watch: --stop-timeout wants seconds, got '%s'\n", optarg);
                goto usage;
            }
            break;
        }
        case O_BASE:
            o.base = optarg;
            break;
        case O_EXACT:
            o.fast = 0;
            break;
        case O_FAST:
            o.fast = 1;
            break;
        case O_THREADS: {
            int64_t t = 0;
            if (parse_count(optarg, &t) || t < 1 || t > MAX_THREADS) {
                fprintf(stderr, "alphatop watch: --threads wants 1..%d, got '%s'\n", MAX_THREADS,
                        optarg);
                goto usage;
            }
            o.threads = (int)t;
            break;
        }
        case O_MAX:
            if (parse_count(optarg, &o.max_snapshots)) {
                fprintf(stderr, "alphatop watch: --max-snapshots wants a count, got '%s'\n",
                        optarg);
                goto usage;
            }
            break;
        case 'h':
            fputs(watch_usage, stdout);
            free(rules);
            return AT_EXIT_OK;
        default:
            fprintf(stderr, "alphatop watch: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            goto usage;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "alphatop watch: unexpected argument '%s'\n", argv[optind]);
        goto usage;
    }
    o.rules = rules;
    o.json_out = headless ? stdout : NULL;

    at_model *model = at_model_new();
    char err[512];
    at_engine *engine = model ? at_engine_new(&o, model, err, sizeof err) : NULL;
    if (!engine) {
        fprintf(stderr, "alphatop watch: %s\n", model ? err : "out of memory");
        at_model_free(model);
        free(rules);
        return AT_EXIT_USAGE;
    }
    catch_signals();
    int rc;
    if (headless) {
        fprintf(stderr, "alphatop: listening on %s\n", at_engine_endpoint(engine));
        rc = at_engine_run(engine, &interrupted);
    } else {
        rc = at_watch_view_run(model, engine, &interrupted);
    }
    at_engine_free(engine);
    at_model_free(model);
    free(rules);
    return rc;
usage:
    fputs(watch_usage, stderr);
    free(rules);
    return AT_EXIT_USAGE;
}

int cmd_replay(int argc, char **argv)
{
    int headless = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(replay_usage, stdout);
            return AT_EXIT_OK;
        } else if (!strcmp(argv[i], "--headless")) {
            headless = 1;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "alphatop replay: unexpected argument '%s'\n\n%s", argv[i],
                    replay_usage);
            return AT_EXIT_USAGE;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "alphatop replay: which run log?\n\n%s", replay_usage);
        return AT_EXIT_USAGE;
    }
    char note[600];
    int n;
    if (headless) {
        n = at_replay_print(stdout, path, note, sizeof note);
        if (n < 0) {
            fprintf(stderr, "alphatop replay: %s\n", note);
            return AT_EXIT_USAGE;
        }
        if (*note)
            fprintf(stderr, "alphatop replay: %s: %s\n", path, note);
        return AT_EXIT_OK;
    }
    at_model *model = at_model_new();
    if (!model)
        return AT_EXIT_USAGE;
    n = at_replay_load(model, path, note, sizeof note);
    if (n < 0) {
        fprintf(stderr, "alphatop replay: %s\n", note);
        at_model_free(model);
        return AT_EXIT_USAGE;
    }
    if (*note)
        at_model_add_event(model, -1, -1, -1, AT_EVENT_INFO, note);
    catch_signals();
    int rc = at_watch_view_run(model, NULL, &interrupted);
    at_model_free(model);
    if (*note)
        fprintf(stderr, "alphatop replay: %s: %s\n", path, note);
    return rc;
}
