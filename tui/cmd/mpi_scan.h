/* SPDX-License-Identifier: Apache-2.0 */
/* mpi_scan.h -- `alphatop scan` spread over the processes of an MPI job (mpirun, srun); built
 * only with AT_MPI (docs/cluster.md).
 *
 * Rank 0 is the scan: it reads the checkpoint's index and headers, plans every row, and prints
 * them as a one-process scan would. The tasks (scan_work.h) go out largest first, a group at a
 * time (one layer, or in fast mode one layer across files), to whichever rank has a thread
 * free -- rank 0's own worker threads included: dynamic load balancing, not a static split.
 * A task names its tensors by file and byte offset, so every rank reads its layers itself from
 * the (shared) file system and only task descriptions and results (metrics, and with --plot
 * the eigenvalues) travel over MPI, never weights. Every rank runs its tasks on its own pool of
 * threads, one per core it may use unless --threads says otherwise. A layer whose bytes exist
 * only in rank 0's memory (read from a pipe, inflated from a compressed archive entry) is
 * analysed on rank 0.
 *
 * Messages (bytes; every rank is the same build, scan_work.h's byte form):
 *   0 -> r   SETUP   the analyzer options, --threads and --max-memory
 *   r -> 0   READY   how many groups r runs at once (its threads)
 *   0 -> r   GROUP   a group's tasks
 *   r -> 0   RESULT  one task's result (the last of its group frees r's slot)
 *   0 -> r   STOP    no more work: r leaves MPI and exits 0
 * Waiting is a short sleep between non-blocking probes, never a blocking receive, so a rank
 * waiting for work does not take a core from the threads analysing. */
#ifndef ALPHATOP_MPI_SCAN_H
#define ALPHATOP_MPI_SCAN_H

#include "scan_work.h"

typedef struct scan_mpi scan_mpi;

/* Joins the MPI job when this process was started by an MPI launcher with more than one
 * process (OpenMPI's mpirun, a PMI or PMIx launcher such as srun --mpi=pmix); NULL otherwise,
 * and the scan runs on its own. Tasks of one Slurm step started without MPI (srun without
 * --mpi) get a session that does nothing on every task but the first, which scans alone after a
 * warning. Caller owns return value (scan_mpi_serve or scan_mpi_finish frees it). */
scan_mpi *scan_mpi_start(void);

/* This process's rank (0: the one that scans). */
int scan_mpi_rank(const scan_mpi *self);

/* Rank > 0: serves rank 0's tasks until it says stop, then leaves MPI and frees self. Returns
 * the exit code (0). */
int scan_mpi_serve(scan_mpi *self);

/* Rank 0: points *e at an executor that spreads the tasks over every rank, this one's runner
 * local included; the other ranks are set up as *setup says (threads 0: each its own CPU
 * count). self and local are borrowed until scan_mpi_finish. */
void scan_mpi_exec(scan_mpi *self, const scan_setup *setup, scan_runner *local, scan_exec *e);

/* Rank 0: tells every other rank to stop, prints one line on how the work was spread
 * ("alphatop scan: MPI: ..."), leaves MPI and frees self. NULL-safe. */
void scan_mpi_finish(scan_mpi *self);

#endif
