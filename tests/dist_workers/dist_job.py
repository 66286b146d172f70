"""What the dist workers share: argv, the gloo process group, a seeded tiny MLP, each rank's
own batches, one training step, and the end that writes what the counter saw.

Importing it imports ``collective_counter`` first, so the counters are in place before the
model, the process group or the recorder exist.
"""
import json
import os
import sys

import collective_counter  # noqa: F401  (first: wraps the collectives)
import torch
import torch.distributed as dist


def start() -> tuple:
    """(out path, steps, rank, extra argv) with the process group up and torch seeded."""
    out, steps = sys.argv[1], int(sys.argv[2])
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    return out, steps, dist.get_rank(), sys.argv[3:]


def mlp(*widths) -> torch.nn.Sequential:
    """Linear layers of these widths with a ReLU between each two."""
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(widths) - 2 else [])
    return torch.nn.Sequential(*layers)


def batch_source(rank: int):
    """``next_batch(size)`` -> (x, y = row sums of x): a rank's own data, seeded by its rank."""
    gen = torch.Generator().manual_seed(100 + rank)

    def next_batch(size: int):
        x = torch.randn(size, 8, generator=gen)
        return x, x.sum(1, keepdim=True)
    return next_batch


def train_step(model, opt, x, y):
    loss = (model(x) - y).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def finish(out: str, rank: int, counts: dict | None = None) -> None:
    """Write the collectives called from recorder frames (OUT.collectives<rank>) and
    ``counts`` (OUT.counts<rank>.json), then leave the process group together."""
    with open(f"{out}.collectives{rank}", "w") as fh:
        fh.write(",".join(collective_counter.calls))
    if counts is not None:
        with open(f"{out}.counts{rank}.json", "w") as fh:
            json.dump(counts, fh)
    dist.barrier()
    dist.destroy_process_group()
    # Everything this rank reports is written and closed. Leave without interpreter
    # finalization: there, gloo's C++ threads can abort the process ("terminate called without
    # an active exception", SIGABRT; seen twice in full-suite runs on a 2-core machine, never
    # in 20 runs of the test alone, idle or loaded) after the job has done its work, failing a
    # test whose outputs were all correct. The marker says the rank got this far.
    with open(f"{out}.done{rank}", "w") as fh:
        fh.write("ok")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
