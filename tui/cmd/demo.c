/* SPDX-License-Identifier: Apache-2.0 */
/* demo.c -- `alphatop demo`: a real training run streaming into the live view. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"

static const char demo_about[] =
    "Starts a real training run (one of alphatop's examples) that publishes to this monitor on\n"
    "a private endpoint, and shows it live: the PyTorch grokking example (/usr/bin/python3 with\n"
    "torch) if torch is importable, else the C trainer. Quitting the view stops the trainer.\n";

static const char demo_notes[] =
    "The examples are found next to this program: PREFIX/share/alphatop/examples and\n"
    "PREFIX/libexec/alphatop when installed, BUILD/examples in a build tree.\n"
    "The trainer's own output goes to /tmp/alphatop-demo-PID-N.log. When the automatically\n"
    "chosen PyTorch trainer cannot run, the demo falls back to the C trainer. A trainer that\n"
    "fails on its own ends the demo with exit status 1.\n";

/* Where the demo's parts are, relative to the directory of the running program: the installed
 * layout (PREFIX/bin/alphatop) and the build tree's (BUILD/tui/alphatop). CMake defines the
 * AT_DEMO_* paths from the install directories and the build tree (tui/cmd/CMakeLists.txt). */
typedef struct layout {
    const char *name;     /* in messages */
    const char *examples; /* holds torch_grokking.py */
    const char *trainers; /* holds the C trainer, c_trainer */
    const char *python;   /* holds the alphatop package */
    const char *lib;      /* holds libalphatop_agent.so */
} layout;

static const layout layouts[] = {
    {"installed", AT_DEMO_INSTALLED_EXAMPLES, AT_DEMO_INSTALLED_TRAINERS, AT_DEMO_INSTALLED_PYTHON,
     AT_DEMO_INSTALLED_LIB},
    {"build tree", AT_DEMO_BUILD_EXAMPLES, AT_DEMO_BUILD_TRAINERS, AT_DEMO_BUILD_PYTHON,
     AT_DEMO_BUILD_LIB},
};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

/* A trainer and what it runs with, all paths absolute. */
typedef struct trainer_paths {
    char program[PATH_MAX]; /* the script or executable */
    char python[PATH_MAX];  /* for PYTHONPATH */
    char lib[PATH_MAX];     /* for ALPHATOP_LIB */
} trainer_paths;

/* Directory of the running alphatop binary, into buf. */
static int exe_dir(char *buf, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    return 0;
}

/* dir/rel/name into buf (cap PATH_MAX); 0 if it fits. */
static int join(char *buf, const char *dir, const char *rel, const char *name)
{
    int n = snprintf(buf, PATH_MAX, "%s/%s/%s", dir, rel, name);
    return n > 0 && n < PATH_MAX ? 0 : -1;
}

/* Finds trainer ("torch" or "c") in the first layout that has it, and there the Python package
 * and the agent library it uses. Returns 0, or -1 after saying on stderr what is missing where. */
static int find_trainer(trainer_paths *tp, const char *trainer, const char *bin)
{
    const int torch = !strcmp(trainer, "torch");
    const char *name = torch ? "torch_grokking.py" : "c_trainer";
    for (size_t i = 0; i < NLAYOUTS; i++) {
        const layout *l = &layouts[i];
        if (join(tp->program, bin, torch ? l->examples : l->trainers, name) != 0 ||
            access(tp->program, torch ? R_OK : X_OK) != 0)
            continue;
        char package[PATH_MAX];
        if (join(tp->python, bin, l->python, "") != 0 || join(tp->lib, bin, l->lib, "") != 0 ||
            join(package, bin, l->python, "alphatop/__init__.py") != 0)
            continue;
        if (torch && access(package, R_OK) != 0) {
            fprintf(stderr,
                    "alphatop demo: found %s, but not the Python package it needs (no %s); "
                    "install alphatop with `cmake --install BUILD`\n",
                    tp->program, package);
            return -1;
        }
        return 0;
    }
    fprintf(stderr, "alphatop demo: cannot find the %s trainer: no", torch ? "PyTorch" : "C");
    for (size_t i = 0; i < NLAYOUTS; i++) {
        const layout *l = &layouts[i];
        char path[PATH_MAX];
        join(path, bin, torch ? l->examples : l->trainers, name);
        fprintf(stderr, "%s %s (%s)", i ? " nor" : "", path, l->name);
    }
    fputs("; install alphatop with `cmake --install BUILD`, or run BUILD/tui/alphatop\n", stderr);
    return -1;
}

/* Starts the trainer in its own process group, output to logpath. Returns its pid or -1. */
static pid_t spawn_trainer(const char *const *argv, const char *logpath, const trainer_paths *tp,
                           const char *endpoint)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* Its own group: the terminal's signals and the view's raw mode are not its business. */
    setpgid(0, 0);
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int devnull = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
    }
    if (devnull >= 0)
        dup2(devnull, STDIN_FILENO);
    /* This alphatop's own package and library first, whatever else the user has. */
    const char *old = getenv("PYTHONPATH");
    char pythonpath[2 * PATH_MAX + 2];
    snprintf(pythonpath, sizeof pythonpath, "%s%s%s", tp->python, old && *old ? ":" : "",
             old && *old ? old : "");
    setenv("PYTHONPATH", pythonpath, 1);
    setenv("ALPHATOP_LIB", tp->lib, 1);
    setenv("ALPHATOP_ENDPOINT", endpoint, 1);
    setenv("OMP_NUM_THREADS", "1", 1);
    execv(argv[0], (char *const *)argv);
    fprintf(stderr, "alphatop demo: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static volatile pid_t trainer_pid;
static volatile sig_atomic_t trainer_failed; /* its exit status (or 128 + signal); 0 running */

/* A trainer that dies on its own with an error ends the demo (watch stops on SIGTERM). */
static void on_child(int sig)
{
    (void)sig;
    int st;
    if (trainer_pid > 0 && waitpid(trainer_pid, &st, WNOHANG) == trainer_pid) {
        trainer_pid = 0;
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (code != 0) {
            trainer_failed = code;
            kill(getpid(), SIGTERM);
        }
    }
}

/* Ends the trainer: SIGTERM, a grace period, then SIGKILL; always reaped. */
static void stop_trainer(pid_t pid)
{
    int st;
    signal(SIGCHLD, SIG_DFL);
    if (trainer_pid == 0)
        return; /* already reaped by on_child */
    kill(-pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, &st, 0);
}

/* What every attempt shares. */
typedef struct demo {
    const char *bin; /* the directory of this program */
    const char *every, *max, *record;
    int headless;
} demo;

/* Runs the monitor with trainer ("torch" or "c") feeding it, until the view quits, the
 * snapshots are done or the trainer fails (trainer_failed set). Returns watch's exit code, or
 * -1 when the trainer is not there (said on stderr). */
static int run_demo(const demo *d, const char *trainer)
{
    static int attempt;
    trainer_paths tp;
    if (find_trainer(&tp, trainer, d->bin) != 0)
        return -1;
    char endpoint[128], logpath[128];
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/alphatop-demo-%d-%d.ipc", (int)getpid(),
             attempt);
    snprintf(logpath, sizeof logpath, "/tmp/alphatop-demo-%d-%d.log", (int)getpid(), attempt++);
    const char *targv[16];
    int n = 0;
    if (!strcmp(trainer, "torch")) {
        targv[n++] = "/usr/bin/python3";
        targv[n++] = tp.program;
        targv[n++] = "--publish";
        targv[n++] = "--quiet";
    } else {
        targv[n++] = tp.program;
        targv[n++] = "--quiet";
    }
    targv[n++] = "--endpoint";
    targv[n++] = endpoint;
    targv[n++] = "--every";
    targv[n++] = d->every;
    targv[n] = NULL;

    const char *wargv[16] = {"watch", "--listen", endpoint};
    int wn = 3;
    if (d->headless)
        wargv[wn++] = "--headless";
    wargv[wn++] = "--record";
    wargv[wn++] = d->record ? d->record : "-";
    if (d->max) {
        wargv[wn++] = "--max-snapshots";
        wargv[wn++] = d->max;
    }
    wargv[wn] = NULL;

    fprintf(stderr, "alphatop demo: %s trainer on %s (its output: %s)\n", trainer, endpoint,
            logpath);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_child;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    pid_t pid = spawn_trainer(targv, logpath, &tp, endpoint);
    if (pid < 0) {
        fprintf(stderr, "alphatop demo: cannot start the trainer: %s\n", strerror(errno));
        return AT_EXIT_USAGE;
    }
    trainer_pid = pid;
    int rc = cmd_watch(wn, (char **)wargv);
    stop_trainer(pid);
    if (trainer_failed) {
        fprintf(stderr, "alphatop demo: the %s trainer failed (exit status %d); see %s\n", trainer,
                (int)trainer_failed, logpath);
        return AT_EXIT_PARTIAL;
    }
    return rc;
}

int cmd_demo(int argc, char **argv)
{
    const char *trainer = NULL, *record = NULL;
    int64_t every = 200, max = 0;
    int headless = 0, nargs = 0;
    const at_arg_opt opts[] = {
        {.name = "trainer",
         .kind = AT_ARG_STRING,
         .value = &trainer,
         .meta = "torch|c",
         .help = "pick the trainer instead of the automatic choice"},
        {.name = "every",
         .kind = AT_ARG_INT,
         .value = &every,
         .help = "steps between snapshots; the default fills the heatmap in seconds",
         .min = 1,
         .flags = AT_ARG_SHOW_DEFAULT},
        {.name = "headless",
         .kind = AT_ARG_FLAG,
         .value = &headless,
         .help = "JSON lines instead of the terminal view (as watch --headless)"},
        {.name = "max-snapshots",
         .kind = AT_ARG_INT,
         .value = &max,
         .help = "stop after N analysed snapshots"},
        {.name = "record",
         .kind = AT_ARG_STRING,
         .value = &record,
         .meta = "LOG",
         .help = "record the run (default: not recorded)"},
    };
    const at_args_spec spec = {"demo", "[OPTIONS]", demo_about, demo_notes,     NULL,
                               0,      0,           opts,       AT_ARGS_N(opts)};
    int rc = at_args_handle(&spec, argc, argv, &nargs);
    if (rc >= 0)
        return rc;
    if (trainer && strcmp(trainer, "torch") && strcmp(trainer, "c"))
        return at_args_error("demo", "--trainer is torch or c, got '%s'", trainer);
    char every_s[24], max_s[24];
    snprintf(every_s, sizeof every_s, "%lld", (long long)every);
    snprintf(max_s, sizeof max_s, "%lld", (long long)max);
    char bin[PATH_MAX];
    if (exe_dir(bin, sizeof bin) != 0) {
        fputs("alphatop demo: cannot find my own binary\n", stderr);
        return AT_EXIT_USAGE;
    }
    demo d = {.bin = bin,
              .every = every_s,
              .max = max ? max_s : NULL,
              .record = record,
              .headless = headless};
    if (trainer)
        rc = run_demo(&d, trainer);
    else {
        /* torch when it works here, else the C trainer. */
        const int python = access("/usr/bin/python3", X_OK) == 0;
        rc = python ? run_demo(&d, "torch") : -1;
        if (rc >= 0 && !trainer_failed)
            return rc;
        if (python)
            fputs("alphatop demo: falling back to the C trainer\n", stderr);
        trainer_failed = 0;
        rc = run_demo(&d, "c");
    }
    return rc < 0 ? AT_EXIT_USAGE : rc;
}
