#!/bin/bash
# usage: run_big.sh LOGGER END_EPOCH -- a trainspect 4 x 1 M pass, then LOGGER's, at nice 19
# (ran as: run_big.sh mlflow-file END and run_big.sh aim END, side by side, 2026-12-03)
lg=$1; end=$2
cd /work/main
export PYTHONPATH=/work/wt/main-path
PY=/work/benchvenv/bin/python
echo 19 > /proc/$$/autogroup 2>/dev/null   # renice_loop.sh does the same for the children
for who in trainspect "$lg"; do
  [ "$who" = trainspect ] && out=/work/peers-big/trainspect-before-$lg.jsonl || out=/work/peers-big/$lg.jsonl
  left=$(( end - $(date +%s) ))
  echo "$(date -u +%T) START $who timeout $left uptime: $(uptime)" >> /work/peers-big/${lg%-file}.log
  nice -n 19 $PY benchmarks/compare_loggers.py --rounds 0 --only $who --big-only $who --big-steps 1000000 \
    --big-timeout $left --budget-min 200 --out $out > ${out%.jsonl}.out 2>&1
  echo "$(date -u +%T) END $who rc $? uptime: $(uptime)" >> /work/peers-big/${lg%-file}.log
done
