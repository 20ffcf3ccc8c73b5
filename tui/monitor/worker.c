/* worker.c -- exact analysis of submitted layers on one background thread. */
#include "worker.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "alphatop/lora.h"
#include "alphatop/sched.h"

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
    at_lora *lora;   /* created on the first LoRA job */
    at_sched *sched; /* fast mode: the scheduler does the work; the fields above are unused */
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
    free(job->data2);
    free(job->evals);
    free(job);
}

void at_worker_opts_default(at_worker_opts *o)
{
    o->fast = 0;
    o->threads = 1;
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
    if (job->lora_a.data) {
        if (!self->lora)
            self->lora = at_lora_new();
        job->rc = self->lora ? at_lora_analyze(self->lora, &job->t, &job->lora_a, 1.0, &o, &job->m)
                             : AT_ERR_NOMEM;
        if (job->rc < 0)
            snprintf(job->error, sizeof job->error, "%s",
                     self->lora ? at_lora_last_error(self->lora) : "out of memory");
        return;
    }
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

static at_worker *new_fast(at_worker *self, int *status)
{
    at_sched_opts so;
    at_sched_opts_default(&so);
    so.htsr.traps = self->opts.traps;
    so.htsr.detx = self->opts.detx;
    so.htsr.seed = self->opts.seed;
    so.blas_threads = self->opts.threads;
    self->sched = at_sched_new(&so, status);
    if (!self->sched || at_sched_start(self->sched) != AT_OK) {
        *status = self->sched ? AT_ERR_IO : *status;
        at_sched_free(self->sched);
        free(self);
        return NULL;
    }
    *status = AT_OK;
    return self;
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
    if (self->opts.fast)
        return new_fast(self, status);
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
    /* Process-global, as in at_sched_start. Default 1: the monitor shares the cores with a
     * trainer, and a multi-threaded BLAS call waiting on a descheduled OpenBLAS thread made the
     * demo's analysis fall behind (98 layers in 33 s and drops, against 180 in 19 s on one
     * thread). */
    openblas_set_num_threads(self->opts.threads > 0 ? self->opts.threads : 1);
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

/* job->data -= job->base, for fast mode (exact mode leaves it to at_htsr_analyze_delta). A
 * 2-D base may be stored transposed. AT_ERR_SIZE when the shapes do not pair. */
static int subtract_base(at_job *job)
{
    const at_tensor *b = &job->base;
    int64_t n = 1, rows = job->t.shape[0];
    for (int i = 0; i < job->t.ndim; i++)
        n *= job->t.shape[i];
    int64_t cols = n / rows;
    int same = b->ndim == job->t.ndim &&
               !memcmp(b->shape, job->t.shape, (size_t)b->ndim * sizeof b->shape[0]);
    int transposed =
        !same && b->ndim == 2 && job->t.ndim == 2 && b->shape[0] == cols && b->shape[1] == rows;
    if (!same && !transposed)
        return AT_ERR_SIZE;
    float *tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp)
        return AT_ERR_NOMEM;
    at_convert_to_f32(b->data, b->dtype, (size_t)n, tmp);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            job->data[i * cols + j] -= transposed ? tmp[j * rows + i] : tmp[i * cols + j];
    free(tmp);
    return AT_OK;
}

/* The scheduler knows layers by name: run, layer and space make the key. */
static int submit_fast(at_worker *self, at_job *job)
{
    if (job->base.data && subtract_base(job) != AT_OK)
        return AT_ERR_SIZE;
    char key[64];
    snprintf(key, sizeof key, "%d/%d/%d", job->run, job->layer, (int)job->space);
    int rc = at_sched_submit_owned(self->sched, key, job->step, job->data, job->t.kind, job->t.ndim,
                                   job->t.shape);
    job->data = NULL;
    at_job_free(job);
    return rc;
}

static at_job *poll_fast(at_worker *self)
{
    at_sched_result *r = at_sched_poll(self->sched);
    if (!r)
        return NULL;
    at_job *job = calloc(1, sizeof *job);
    int space = 0;
    if (job && sscanf(r->layer, "%d/%d/%d", &job->run, &job->layer, &space) != 3) {
        free(job);
        job = NULL;
    }
    if (job) {
        job->space = (at_space)space;
        job->step = r->step;
        job->rc = r->rc;
        snprintf(job->error, sizeof job->error, "%s", r->error);
        job->m = r->m;
        job->max_abs = NAN;
    }
    at_sched_result_free(r);
    return job;
}

int at_worker_submit(at_worker *self, at_job *job)
{
    if (!job)
        return AT_ERR_ARG;
    if (self->sched)
        return submit_fast(self, job);
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
    if (self->sched)
        return poll_fast(self);
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
    return self->sched ? at_sched_fd(self->sched) : self->pipe_rd;
}

int at_worker_cancel(at_worker *self, int run, int64_t step)
{
    int removed = 0;
    if (self->sched)
        return 0;
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
    if (self->sched) {
        at_sched_progress p;
        at_sched_progress_get(self->sched, &p);
        return (int)p.waiting + p.busy;
    }
    pthread_mutex_lock(&self->mu);
    int n = self->todo.n + self->running;
    pthread_mutex_unlock(&self->mu);
    return n;
}

void at_worker_pause(at_worker *self, int paused)
{
    if (self->sched) {
        at_sched_pause(self->sched, paused);
        return;
    }
    pthread_mutex_lock(&self->mu);
    self->paused = paused;
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
}

void at_worker_free(at_worker *self)
{
    if (!self)
        return;
    if (self->sched) {
        at_sched_free(self->sched);
        free(self);
        return;
    }
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
    at_lora_free(self->lora);
    free(self);
}
