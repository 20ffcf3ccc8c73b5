/* SPDX-License-Identifier: Apache-2.0 */
/* mpi_watch.h -- `alphatop watch` spread over the processes of an MPI job (mpirun, srun); built
 * only with AT_MPI (docs/cluster.md).
 *
 * Rank 0 is the monitor: the trainers' socket, the headless output (it has no terminal), the
 * run logs. The other ranks analyse: rank 0's engine gives its analysis worker (worker.h) the
 * remote service below, whose one communication thread sends each layer job -- a header, then
 * the weights (and base weights, LoRA factor) -- to a rank and receives its result: the metrics,
 * the largest |w|, in exact mode the eigenvalues. Every analysing rank runs its jobs on its own
 * analysis worker, one thread per CPU it may use unless --threads says otherwise, and keeps
 * there the fast-mode warm state of the layers it analysed.
 *
 * Which rank: every rank holds at most two jobs per thread (one running, one queued, so no
 * thread waits for the round trip of a result and the next job) and at most one job of each
 * layer; the rest wait on rank 0, where in fast mode a layer's newer snapshot replaces its
 * waiting one. A layer goes back to the rank that analysed it last (its home, where its warm
 * state is), waiting for room there, unless the jobs waiting for that rank are at least two
 * rounds of its threads more than those waiting for a rank with room: then it moves (a cold
 * analysis there) and that rank becomes its home. A layer new to the job goes to the rank with
 * the most room. In exact mode nothing is warm and a layer goes to any rank with room.
 *
 * Messages (bytes; every rank is the same build):
 *   0 -> r   SETUP   the worker options (fast, threads, traps, detx, seed, state budget)
 *   r -> 0   READY   how many jobs r runs at once (its threads; 0: it could not start)
 *   0 -> r   JOB     a job's header, then DATA messages: its tensors' bytes, in pieces
 *   r -> 0   RESULT  a job's result and eigenvalues
 *   0 -> r   STOP    the monitor ends: r answers BYE, leaves MPI and exits 0
 * Waiting is a short sleep between non-blocking probes, never a blocking receive. */
#ifndef ALPHATOP_MPI_WATCH_H
#define ALPHATOP_MPI_WATCH_H

#include <stdint.h>

#include "worker.h"

typedef struct watch_mpi watch_mpi;

/* Joins the MPI job when this process was started by an MPI launcher with more than one process
 * (mpi_launch.h); NULL otherwise, and the monitor runs on its own. Caller owns return value
 * (watch_mpi_serve or watch_mpi_finish frees it). */
watch_mpi *watch_mpi_start(void);

/* This process's rank (0: the monitor). */
int watch_mpi_rank(const watch_mpi *self);

/* Rank > 0: analyses rank 0's jobs until it says stop, then leaves MPI and frees self. Returns
 * the exit code (0). */
int watch_mpi_serve(watch_mpi *self);

/* Rank 0: the service that analyses on the other ranks, for at_worker_opts.remote. Borrowed:
 * valid until watch_mpi_finish. */
const at_worker_remote *watch_mpi_remote(watch_mpi *self);

/* Rank 0: stops every other rank (if the worker did not), prints one line on how the layers
 * were spread ("alphatop watch: MPI: ..."), leaves MPI and frees self. NULL-safe. */
void watch_mpi_finish(watch_mpi *self);

/* The rule above, for one job: the rank it goes to, or -1 when it waits. home: the rank of its
 * layer (<= 0: none, or exact mode); per rank r of 1 .. size-1: room[r] (jobs r may still
 * take), backlog[r] (jobs waiting whose layer's home is r), threads[r]. With no home, the rank
 * with the most room (the lowest of those tied); -1 when no rank has room. */
int watch_mpi_pick(int home, int size, const int *room, const int64_t *backlog, const int *threads);

#endif
