/* SPDX-License-Identifier: Apache-2.0 */
/* mpi_session.h -- what the MPI scan and the MPI monitor share (docs/cluster.md): joining the
 * MPI job this process was started in (mpirun, srun), and waiting for a message without taking
 * a core. Built only with AT_MPI. */
#ifndef ALPHATOP_MPI_SESSION_H
#define ALPHATOP_MPI_SESSION_H

#include <stddef.h>

/* Who this process is in the job. */
typedef struct mpi_member {
    int rank, size;
    int active; /* MPI is initialised (0: an idle task of a Slurm step started without MPI) */
} mpi_member;

/* Joins the MPI job when an MPI launcher started this process with others (OpenMPI's mpirun, a
 * PMI or PMIx launcher such as srun --mpi=pmix), with MPI_Init_thread at thread level `level`
 * at least, and returns a zeroed object of `bytes` bytes for the command's session (caller
 * frees), *who filled in; the caller calls MPI_Finalize when who->active. NULL when the command
 * runs on its own: no launcher, a job of one process, MPI unable to start at that level (said
 * on stderr), MPI initialised before (a command run twice in one process); nothing is then left
 * initialised. Tasks of one Slurm step started without MPI (srun without --mpi) cannot reach
 * each other: the first says so on stderr (naming command cmd) and runs on its own, the others
 * get a session with who->active 0 (rank: their task number) and do nothing. Out of memory
 * for the session ends the job (MPI_Abort). */
void *mpi_session_start(const char *cmd, int level, size_t bytes, mpi_member *who);

/* How long a rank with nothing to do sleeps between probes (ms): the latency of handing out
 * work, and what an idle rank costs (a wake-up per millisecond). */
#define MPI_NAP_MS 1

/* Sleeps MPI_NAP_MS. */
void mpi_nap(void);

/* Waits for the next message from rank src (MPI_ANY_SOURCE: any), a nap between probes: its
 * tag, sender and *n bytes in *buf (caller frees). Out of memory for it ends the job
 * (MPI_Abort, with a message on stderr). */
void mpi_receive(int src, int *tag, int *from, unsigned char **buf, int *n);

#endif
