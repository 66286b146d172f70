#!/bin/bash
# usage: slot.sh NAME END_EPOCH logger [logger...]  -- runs trainspect then each logger, one process each, nice 19
name=$1; end=$2; shift 2
cd /work/wt/peers
export PYTHONPATH=/work/wt/peers-path
PY=/work/benchvenv/bin/python
for lg in "$@"; do
  for who in trainspect "$lg"; do
    [ "$who" = trainspect ] && out=/work/peers-big/trainspect-before-$lg.jsonl || out=/work/peers-big/$lg.jsonl
    left=$(( end - $(date +%s) ))
    if [ $left -lt 120 ]; then echo "$(date -u +%T) no time left for $who" >> /work/peers-big/$name.log; exit 0; fi
    echo "$(date -u +%T) START $who timeout $left uptime: $(uptime)" >> /work/peers-big/$name.log
    nice -n 19 $PY benchmarks/compare_loggers.py --rounds 0 --only $who --big-only $who --big-steps 1000000 \
      --big-timeout $left --budget-min 200 --out $out > ${out%.jsonl}.out 2>&1
    echo "$(date -u +%T) END $who rc $? uptime: $(uptime)" >> /work/peers-big/$name.log
  done
done
