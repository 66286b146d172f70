#!/bin/bash
cd /work/main
export PYTHONPATH=/work/wt/main-path
PY=/work/benchvenv/bin/python
end=$1
echo 19 > /proc/$$/autogroup 2>/dev/null
for who in trainspect mlflow-file; do
  [ "$who" = trainspect ] && out=/work/peers-big/trainspect-before-mlflow-file.jsonl || out=/work/peers-big/mlflow-file.jsonl
  left=$(( end - $(date +%s) ))
  echo "$(date -u +%T) START $who timeout $left uptime: $(uptime)" >> /work/peers-big/mlflow.log
  nice -n 19 $PY benchmarks/compare_loggers.py --rounds 0 --only $who --big-only $who --big-steps 1000000 \
    --big-timeout $left --budget-min 200 --out $out > ${out%.jsonl}.out 2>&1
  echo "$(date -u +%T) END $who rc $? uptime: $(uptime)" >> /work/peers-big/mlflow.log
done
