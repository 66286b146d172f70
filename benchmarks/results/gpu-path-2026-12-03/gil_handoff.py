"""What a GIL hand-off costs the training thread: the transformer of bench_recorder.py trains while a
helper thread makes k GIL-releasing h5py calls (a dataspace resize) every 20 ms; medians of interleaved
rounds.  python gil_handoff.py ROUNDS"""
import sys, time, threading, statistics, pathlib
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))   # benchmarks/
import torch
from h5py import h5s
from bench_recorder import transformer
torch.set_num_threads(1)
model, batch, loss_fn = transformer()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
data = [batch() for _ in range(8)]
def train(n):
    t0 = time.perf_counter()
    for i in range(n):
        x, y = data[i % 8]
        loss = loss_fn(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
    return (time.perf_counter() - t0) / n * 1e3
space = h5s.create_simple((10,), (h5s.UNLIMITED,))
def helper(k, stop, acc):
    c0 = time.thread_time()
    while not stop.is_set():
        for j in range(k):
            space.set_extent_simple((10 + j % 3,), (h5s.UNLIMITED,))
        time.sleep(0.02)
    acc.append(time.thread_time() - c0)
train(30)
res = {k: [] for k in (0, 25, 200, 1000)}
for r in range(int(sys.argv[1])):
    for k in res:
        stop = threading.Event(); acc = []
        th = threading.Thread(target=helper, args=(k, stop, acc)); th.start()
        ms = train(150)
        stop.set(); th.join()
        res[k].append((ms, acc[0]))
base = res[0]
for k, v in res.items():
    print(k, "calls/20ms: step ms med %.3f ratio x%.4f helper cpu s %.3f" % (statistics.median(a for a, _ in v), statistics.median(a[0] / b[0] for a, b in zip(v, base)), statistics.median(c for _, c in v)))
