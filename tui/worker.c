/* worker.c -- exact analysis of submitted layers on one background thread. */
#include "worker.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct node {
    at_job *job;
    struct node *next;
} node;

typedef struct fifo {
    node *head, *tail;
    int n;
} fifo;

static void fifo_push(fifo *q, node *n)
{
    n->next = NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->n++;
}

static node *fifo_pop(fifo *q)
{
    node *n = q->head;
    if (!n)
        return NULL;
    q->head = n->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    return n;
}

struct at_worker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fifo todo, done;
    int running; /* a job is being analysed */
    int paused, quit;
    int pipe_rd, pipe_wr;
    at_worker_opts opts;
    at_htsr *htsr;
};

at_job *at_job_new(const void *src, at_dtype dtype, at_layer_kind kind, int ndim,
                   const int64_t *shape)
{
    if (ndim != 2 && ndim != 4)
        return NULL;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return NULL;
        n *= (size_t)shape[i];
    }
    at_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->data = malloc(n * sizeof(float));
    if (!job->data) {
        free(job);
        return NULL;
    }
    at_convert_to_f32(src, dtype, n, job->data);
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double a = fabs((double)job->data[i]);
        mx = a > mx || a != a ? a : mx;
    }
    job->max_abs = mx;
    job->t.data = job->data;
    job->t.dtype = AT_DTYPE_F32;
    job->t.kind = kind;
    job->t.ndim = ndim;
    memcpy(job->t.shape, shape, (size_t)ndim * sizeof shape[0]);
    return job;
}

void at_job_free(at_job *job)
{
    if (!job)
        return;
    free(job->data);
    free(job->evals);
    free(job);
}

void at_worker_opts_default(at_worker_opts *o)
{
    o->traps = 1;
    o->detx = 1;
    o->seed = 0x616c706861746f70ULL;
}

static void analyse(at_worker *self, at_job *job)
{
    at_htsr_opts o;
    at_htsr_opts_default(&o);
    o.traps = self->opts.traps;
    o.detx = self->opts.detx;
    o.seed = self->opts.seed;
    job->rc = job->base.data ? at_htsr_analyze_delta(self->htsr, &job->t, &job->base, &o, &job->m)
                             : at_htsr_analyze(self->htsr, &job->t, &o, &job->m);
    if (job->rc < 0) {
        snprintf(job->error, sizeof job->error, "%s", at_htsr_last_error(self->htsr));
        return;
    }
    size_t n = 0;
    const double *ev = at_htsr_evals(self->htsr, &n);
    if (ev && n) {
        job->evals = malloc(n * sizeof *ev);
        if (job->evals) {
            memcpy(job->evals, ev, n * sizeof *ev);
            job->num_evals = n;
        }
    }
    /* The weights are no longer needed; results may wait a while in the done queue. */
    free(job->data);
    job->data = NULL;
    job->t.data = NULL;
}

static void *worker_main(void *arg)
{
    at_worker *self = arg;
    pthread_mutex_lock(&self->mu);
    for (;;) {
        while (!self->quit && (self->paused || !self->todo.head))
            pthread_cond_wait(&self->cv, &self->mu);
        if (self->quit)
            break;
        node *n = fifo_pop(&self->todo);
        self->running = 1;
        pthread_mutex_unlock(&self->mu);
        analyse(self, n->job);
        pthread_mutex_lock(&self->mu);
        self->running = 0;
        fifo_push(&self->done, n);
        /* One byte per result; a full pipe already says "results waiting". */
        char b = 1;
        ssize_t w = write(self->pipe_wr, &b, 1);
        (void)w;
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

at_worker *at_worker_new(const at_worker_opts *opts, int *status)
{
    at_worker *self = calloc(1, sizeof *self);
    int fds[2];
    if (!self) {
        *status = AT_ERR_NOMEM;
        return NULL;
    }
    if (opts)
        self->opts = *opts;
    else
        at_worker_opts_default(&self->opts);
    self->htsr = at_htsr_new();
    if (!self->htsr) {
        free(self);
        *status = AT_ERR_NOMEM;
        return NULL;
    }
    if (pipe(fds) != 0) {
        at_htsr_free(self->htsr);
        free(self);
        *status = AT_ERR_IO;
        return NULL;
    }
    self->pipe_rd = fds[0];
    self->pipe_wr = fds[1];
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    if (pthread_create(&self->thread, NULL, worker_main, self) != 0) {
        close(fds[0]);
        close(fds[1]);
        pthread_mutex_destroy(&self->mu);
        pthread_cond_destroy(&self->cv);
        at_htsr_free(self->htsr);
        free(self);
        *status = AT_ERR_IO;
        return NULL;
    }
    *status = AT_OK;
    return self;
}

int at_worker_submit(at_worker *self, at_job *job)
{
    if (!job)
        return AT_ERR_ARG;
    node *n = malloc(sizeof *n);
    if (!n)
        return AT_ERR_NOMEM;
    n->job = job;
    pthread_mutex_lock(&self->mu);
    fifo_push(&self->todo, n);
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
    return AT_OK;
}

at_job *at_worker_poll(at_worker *self)
{
    pthread_mutex_lock(&self->mu);
    node *n = fifo_pop(&self->done);
    if (!self->done.head) {
        char buf[256];
        while (read(self->pipe_rd, buf, sizeof buf) > 0)
            ;
    }
    pthread_mutex_unlock(&self->mu);
    if (!n)
        return NULL;
    at_job *job = n->job;
    free(n);
    return job;
}

int at_worker_fd(const at_worker *self)
{
    return self->pipe_rd;
}

int at_worker_cancel(at_worker *self, int run, int64_t step)
{
    int removed = 0;
    pthread_mutex_lock(&self->mu);
    fifo keep = {0};
    node *n;
    while ((n = fifo_pop(&self->todo))) {
        if (n->job->run == run && n->job->step == step) {
            at_job_free(n->job);
            free(n);
            removed++;
        } else {
            fifo_push(&keep, n);
        }
    }
    self->todo = keep;
    pthread_mutex_unlock(&self->mu);
    return removed;
}

int at_worker_pending(at_worker *self)
{
    pthread_mutex_lock(&self->mu);
    int n = self->todo.n + self->running;
    pthread_mutex_unlock(&self->mu);
    return n;
}

void at_worker_pause(at_worker *self, int paused)
{
    pthread_mutex_lock(&self->mu);
    self->paused = paused;
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
}

void at_worker_free(at_worker *self)
{
    if (!self)
        return;
    pthread_mutex_lock(&self->mu);
    self->quit = 1;
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
    pthread_join(self->thread, NULL);
    node *n;
    while ((n = fifo_pop(&self->todo)) || (n = fifo_pop(&self->done))) {
        at_job_free(n->job);
        free(n);
    }
    close(self->pipe_rd);
    close(self->pipe_wr);
    pthread_mutex_destroy(&self->mu);
    pthread_cond_destroy(&self->cv);
    at_htsr_free(self->htsr);
    free(self);
}
