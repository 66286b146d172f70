"""One rank of a tiny FSDP2 job (``fully_shard``, DTensor parameters) on CPU/gloo that records
with trainspect (run by tests/test_fsdp.py).

argv: OUT_PATH STEPS. After training, each rank writes OUT_PATH.truth<rank>.json: the norms of
its own shards (what its file must hold) and the global norms of every parameter and gradient
computed from the unsharded tensors (``full_tensor()``, the test's collectives, not the recorder's).
"""
import json
import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

from collective_counter import calls
from trainspect import Recorder

out, steps = sys.argv[1], int(sys.argv[2])
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 6), torch.nn.ReLU(),
                            torch.nn.Linear(6, 1))
for layer in model:
    if isinstance(layer, torch.nn.Linear):
        fully_shard(layer)
fully_shard(model)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
gen = torch.Generator().manual_seed(100 + rank)
with Recorder(out, stats_every=1, hist_every=2, snapshot_every=2) as rec:
    rec.watch(model, opt)
    for step in range(steps):
        x = torch.randn(16, 8, generator=gen)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log({"train/loss": loss})
truth = {"local_weight": {}, "global_weight": {}, "global_grad": {}, "local_grad": {}}
for name, p in model.named_parameters():
    truth["local_weight"][name] = p.to_local().norm().item()
    truth["local_grad"][name] = p.grad.to_local().norm().item()
    truth["global_weight"][name] = p.full_tensor().norm().item()
    truth["global_grad"][name] = p.grad.full_tensor().norm().item()
with open(f"{out}.truth{rank}.json", "w") as fh:
    json.dump(truth, fh)
with open(f"{out}.collectives{rank}", "w") as fh:
    fh.write(",".join(calls))
dist.barrier()
dist.destroy_process_group()
