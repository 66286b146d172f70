import subprocess, json, os, statistics, sys
res = {"old": {}, "new": {}}
for i in range(int(sys.argv[1])):
    for tag in (("old", "new") if i % 2 == 0 else ("new", "old")):
        env = dict(os.environ)
        if tag == "old": env["PYTHONPATH"] = "/tmp/oldpkg"
        o = json.loads(subprocess.run([sys.executable, "ab_child_def.py"], env=env, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        for k, v in o.items():
            if k != "file": res[tag].setdefault(k, []).extend(v)
for tag, d in res.items():
    print(tag, {k: f"x{statistics.median(v):.3f} ({min(v):.2f}-{max(v):.2f}) n={len(v)}" for k, v in d.items()})
