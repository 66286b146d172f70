"""One rank of a tiny DDP job on gloo that records with trainspect (run by tests/test_ranks.py).

argv: OUT_PATH STEPS. Every torch.distributed function called from a recorder frame (training
thread or writer thread) is counted; the count goes to OUT_PATH.collectives<rank>.
"""
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from dist_job import batch_source, finish, mlp, start, train_step
from trainspect import Recorder

out, steps, rank, _ = start()
model = DDP(mlp(8, 16, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
next_batch = batch_source(rank)
with Recorder(out, stats_every=2, hist_every=4, snapshot_every=4) as rec:
    rec.watch(model, opt)
    for step in range(steps):
        rec.log({"train/loss": train_step(model, opt, *next_batch(16))})
finish(out, rank)
