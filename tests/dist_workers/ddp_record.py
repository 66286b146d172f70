"""One rank of a tiny DDP job on gloo that records with trainspect (run by tests/test_ranks.py).

argv: OUT_PATH STEPS. Every torch.distributed function called from a recorder frame (training
thread or writer thread) is counted; the count goes to OUT_PATH.collectives<rank>.
"""
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from collective_counter import calls
from trainspect import Recorder

out, steps = sys.argv[1], int(sys.argv[2])
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = DDP(torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
gen = torch.Generator().manual_seed(100 + rank)
with Recorder(out, stats_every=2, hist_every=4, snapshot_every=4) as rec:
    rec.watch(model, opt)
    for step in range(steps):
        x = torch.randn(16, 8, generator=gen)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log({"train/loss": loss})
dist.barrier()
with open(f"{out}.collectives{rank}", "w") as fh:
    fh.write(",".join(calls))
dist.destroy_process_group()
