/* SPDX-License-Identifier: Apache-2.0 */
/* mpi_session.h -- what the MPI scan and the MPI monitor share (docs/cluster.md): joining the
 * MPI job this process was started in (mpirun, srun), and waiting for a message without taking
 * a core. Built only with AT_MPI. */
#ifndef ALPHATOP_MPI_SESSION_H
#define ALPHATOP_MPI_SESSION_H

/* How this process takes part. */
typedef enum mpi_role {
    MPI_ROLE_ALONE,  /* no MPI job (or one of a single process): the command runs on its own */
    MPI_ROLE_JOINED, /* MPI is initialised: a rank of a job of more than one process */
    MPI_ROLE_IDLE,   /* a task of a Slurm step started without MPI, not the first: do nothing */
} mpi_role;

/* Joins the MPI job when an MPI launcher started this process with others (OpenMPI's mpirun, a
 * PMI or PMIx launcher such as srun --mpi=pmix), with MPI_Init_thread at thread level `level`
 * at least: MPI_ROLE_JOINED, *rank and *size set; the caller calls MPI_Finalize. Tasks of one
 * Slurm step started without MPI (srun without --mpi) cannot reach each other: the first says
 * so on stderr (naming command cmd) and gets MPI_ROLE_ALONE, the others MPI_ROLE_IDLE (*rank:
 * their task number). MPI_ROLE_ALONE also when MPI cannot start at that level (said on stderr)
 * or was initialised before (a command run twice in one process), nothing left initialised. */
mpi_role mpi_session_join(const char *cmd, int level, int *rank, int *size);

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
