"""One rank of a tiny FSDP2 job (``fully_shard``, DTensor parameters) on CPU/gloo, trained with
or without trainspect recording it (run by tests/test_fsdp.py).

argv: OUT_PATH STEPS [bare]. After training, each rank writes OUT_PATH.truth<rank>.json: the
norms of its own shards (what its file must hold) and the global norms of every parameter and
gradient computed from the unsharded tensors (``full_tensor()``, the test's collectives, not the
recorder's); and OUT_PATH.counts<rank>.json: the collectives called during training, of each
kind (``torch.distributed`` and functional: FSDP2's own; ``bare``: the same job without a
recorder), the functional ones of the truth computation, and those a planted read of a DTensor
from a recorder frame issues (the counter must see them).
"""
import contextlib
import json

import torch
from torch.distributed.fsdp import fully_shard

import collective_counter
from dist_job import batch_source, finish, mlp, start, train_step
from trainspect import Recorder

out, steps, rank, flags = start()
model = mlp(8, 16, 6, 1)
for layer in model:
    if isinstance(layer, torch.nn.Linear):
        fully_shard(layer)
fully_shard(model)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
next_batch = batch_source(rank)

def since(before: dict) -> dict:
    return {k: v - before[k] for k, v in collective_counter.totals().items()}


before = collective_counter.totals()
with (contextlib.nullcontext() if "bare" in flags else Recorder(out, stats_every=1, hist_every=2, snapshot_every=2)) as rec:
    if rec is not None:
        rec.watch(model, opt)
    for step in range(steps):
        loss = train_step(model, opt, *next_batch(16))
        if rec is not None:
            rec.log({"train/loss": loss})
counts = {"training": since(before), "recorder": list(collective_counter.calls)}
truth = {"local_weight": {}, "global_weight": {}, "global_grad": {}, "local_grad": {}}
before = collective_counter.totals()
for name, p in model.named_parameters():
    truth["local_weight"][name] = p.to_local().norm().item()
    truth["local_grad"][name] = p.grad.to_local().norm().item()
    truth["global_weight"][name] = p.full_tensor().norm().item()
    truth["global_grad"][name] = p.grad.full_tensor().norm().item()
counts["truth"] = since(before)["functional"]
with open(f"{out}.truth{rank}.json", "w") as fh:
    json.dump(truth, fh)
# A recorder that read a sharded parameter as a whole: the counter must name what it issues.
planted = compile("def read_whole(p):\n    return p.detach().norm().full_tensor().item()\n",
                  "/planted/recorder/read_whole.py", "exec")
scope: dict = {}
exec(planted, scope)
scope["read_whole"](model[0].weight)
counts["planted"] = collective_counter.calls[len(counts["recorder"]):]
del collective_counter.calls[len(counts["recorder"]):]   # OUT.collectives<rank>: the recorder's own
finish(out, rank, counts)
