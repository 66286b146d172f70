"""The aten ops a step of the recorder's GPU code path dispatches (forced onto CPU tensors with
_device_path=True; default schedules, steps 150-450 of an 8x16 MLP), by the recorder line that
dispatches them.  python device_ops.py"""
import sys, tempfile, pathlib, collections, traceback
import torch
from torch.utils._python_dispatch import TorchDispatchMode
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))   # benchmarks/
from gpu_check import mlp
from trainspect.recorder import Recorder
torch.set_num_threads(1)
where = collections.Counter()
class Count(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        st = [f for f in traceback.extract_stack() if "/recorder/" in f.filename]
        if st:
            f = st[-1]
            where[(str(func), f.filename.split("/recorder/")[1] + ":" + str(f.lineno) + " " + f.name)] += 1
        return func(*args, **(kwargs or {}))
model, batch, loss_fn, _ = mlp(torch.device("cpu"), depth=8, width=16, batch=8)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
rec = Recorder(pathlib.Path(tempfile.mkdtemp()) / "x.h5", _device_path=True)
rec.watch(model, opt)
def step():
    x, y = batch()
    loss = loss_fn(model(x), y); opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    rec.log({"train/loss": loss})
for _ in range(150): step()
N = 300
with Count():
    for _ in range(N): step()
for k, v in sorted(where.items(), key=lambda kv: -kv[1])[:40]: print("%6.2f %s" % (v / N, k))
print("total", sum(where.values()) / N)
rec.close()
