/* SPDX-License-Identifier: Apache-2.0 */
/* mpi_session.c -- joining the MPI job, waiting for messages (mpi_session.h). */
#include "mpi_session.h"

#include <errno.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The number in environment variable name, or 0. */
static long env_long(const char *name)
{
    const char *v = getenv(name);
    return v ? strtol(v, NULL, 10) : 0;
}

/* How this process takes part. */
typedef enum mpi_role {
    MPI_ROLE_ALONE,  /* no MPI job (or one of a single process): the command runs on its own */
    MPI_ROLE_JOINED, /* MPI is initialised: a rank of a job of more than one process */
    MPI_ROLE_IDLE,   /* a task of a Slurm step started without MPI, not the first: do nothing */
} mpi_role;

/* Joins the job (mpi_session_start) at thread level `level`: *rank and *size set when JOINED,
 * *rank when IDLE. */
static mpi_role join(const char *cmd, int level, int *rank, int *size)
{
    const int launched = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") ||
                         getenv("PMI_RANK") || getenv("PMI_SIZE");
    const long tasks = env_long("SLURM_STEP_NUM_TASKS");
    if (!launched && tasks > 1 && getenv("SLURM_PROCID")) {
        /* srun without an MPI plugin: N copies of the whole command would run N times. */
        *rank = (int)env_long("SLURM_PROCID");
        if (*rank > 0)
            return MPI_ROLE_IDLE;
        fprintf(stderr,
                "alphatop %s: %ld Slurm tasks but no MPI launcher (try srun --mpi=pmix); "
                "running on this task alone\n",
                cmd, tasks);
        return MPI_ROLE_ALONE;
    }
    int provided, before = 0, ended = 0;
    MPI_Initialized(&before);
    MPI_Finalized(&ended);
    if (!launched || before || ended ||
        MPI_Init_thread(NULL, NULL, level, &provided) != MPI_SUCCESS)
        return MPI_ROLE_ALONE;
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    if (provided < level && *rank == 0)
        fprintf(stderr,
                "alphatop %s: this MPI library gives thread level %d, not %d; running on rank 0 "
                "alone\n",
                cmd, provided, level);
    if (provided < level || *size == 1) {
        MPI_Finalize();
        return provided<level && * rank> 0 ? MPI_ROLE_IDLE : MPI_ROLE_ALONE;
    }
    return MPI_ROLE_JOINED;
}

void *mpi_session_start(const char *cmd, int level, size_t bytes, mpi_member *who)
{
    *who = (mpi_member){0, 1, 0};
    const mpi_role role = join(cmd, level, &who->rank, &who->size);
    if (role == MPI_ROLE_ALONE)
        return NULL;
    who->active = role == MPI_ROLE_JOINED;
    void *session = calloc(1, bytes);
    if (!session && who->active) {
        fprintf(stderr, "alphatop %s: MPI rank %d: out of memory\n", cmd, who->rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return session;
}

void mpi_nap(void)
{
    struct timespec ts = {0, MPI_NAP_MS * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void mpi_receive(int src, int *tag, int *from, unsigned char **buf, int *n)
{
    int flag = 0;
    MPI_Status st;
    for (;;) {
        MPI_Iprobe(src, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
        if (flag)
            break;
        mpi_nap();
    }
    MPI_Get_count(&st, MPI_BYTE, n);
    *buf = malloc(*n > 0 ? (size_t)*n : 1);
    if (!*buf) {
        fprintf(stderr, "alphatop: MPI: out of memory for a message of %d bytes\n", *n);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    *tag = st.MPI_TAG;
    *from = st.MPI_SOURCE;
    MPI_Recv(*buf, *n, MPI_BYTE, *from, *tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}
