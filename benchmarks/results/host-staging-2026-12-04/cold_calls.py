"""What one torch call costs between training's kernels, against a micro-benchmark.

    python cold_calls.py

Trains bench_recorder's MLP bare (1 thread) and, after each optimizer step, times a few calls
that log() and the CPU fast path used to make on the loss tensor (thread CPU time, 1,000
steps; the two clock reads around each call add ~0.5 us). In a loop of their own the same calls
cost ~0.2-1 us; here the training kernels have evicted the interpreter's and the dispatcher's
code and data, so each costs several microseconds. Hence
the 2026-12-04 changes: fewer torch calls per step, not cheaper arithmetic.
"""
import collections
import numbers
import sys
import time
import timeit
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench_recorder import mlp  # noqa: E402

PROBES = {
    "isinstance(loss, numbers.Real)": lambda t: isinstance(t, numbers.Real),
    "loss.detach()": lambda t: t.detach(),
    "loss.reshape(())": lambda t: t.reshape(()),
    "loss.item()": lambda t: t.item(),
    "loss.device.type": lambda t: t.device.type,
    "loss.is_cpu": lambda t: t.is_cpu,
    "loss.numel()": lambda t: t.numel(),
}


def main(steps: int = 1000) -> None:
    torch.set_num_threads(1)
    model, batch, loss_fn = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = [batch() for _ in range(8)]
    cost = collections.defaultdict(float)
    clock = time.thread_time
    for i in range(steps + 100):
        x, y = data[i % 8]
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for name, probe in PROBES.items():
            t = clock()
            probe(loss)
            if i >= 100:
                cost[name] += clock() - t
    print("| call | in the training loop (us) | alone, warm (us) |\n|---|---|---|")
    for name, probe in PROBES.items():
        warm = min(timeit.repeat(lambda: probe(loss), number=20000, repeat=5)) / 20000
        print(f"| `{name}` | {cost[name] / steps * 1e6:.2f} | {warm * 1e6:.2f} |")


if __name__ == "__main__":
    main()
