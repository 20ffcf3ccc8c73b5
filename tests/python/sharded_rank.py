# SPDX-License-Identifier: Apache-2.0
"""One rank of a two-process torch.distributed run (gloo, localhost) for test_stream.py.

    sharded_rank.py RANK PORT ENDPOINT MODE

The ranks build the same seeded model (sharded_model.full) and keep their part of it: in MODE
"tp", rank r holds rows r*64.. of fc1 (column parallel), columns r*48.. of fc2 (row parallel)
and all of head, and watches with shards= saying so; in MODE "dp" both hold everything and
watch without shards= (data parallel: rank 0 publishes, rank 1 must not). One snapshot, then
the rank prints what it did as JSON on stdout.
"""

import json
import sys
import time

import torch
import torch.distributed as dist

import alphatop
from sharded_model import full, part


def main():
    rank, port, endpoint, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    shards = None
    if mode == "tp":
        model, shards = part(rank)
    else:
        model = full()
    watcher = alphatop.watch(model, every=1, hook=None, endpoint=endpoint, shards=shards)
    out = {"publishes": watcher.agent is not None}
    if watcher.agent is not None:
        for _ in range(600):
            watcher.step()
            if watcher.stats["snapshots_sent"] >= 1:
                break
            time.sleep(0.05)
        out["stats"] = watcher.stats
    dist.barrier()  # both ranks' snapshots went out before either says goodbye
    watcher.close()
    dist.destroy_process_group()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
