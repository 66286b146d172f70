#!/bin/bash
# usage: slot2.sh NAME END_EPOCH STEPS WAITPID logger  -- waits for WAITPID, then trainspect and logger at STEPS, nice 19
name=$1; end=$2; steps=$3; waitpid=$4; lg=$5
cd /work/wt/peers
export PYTHONPATH=/work/wt/peers-path
PY=/work/benchvenv/bin/python
while kill -0 $waitpid 2>/dev/null; do sleep 5; done
echo "$(date -u +%T) previous driver $waitpid ended" >> /work/peers-big/$name.log
tag=$lg; [ $steps != 1000000 ] && tag=$lg-$((steps/1000))k
for who in trainspect "$lg"; do
  [ "$who" = trainspect ] && out=/work/peers-big/trainspect-before-$tag.jsonl || out=/work/peers-big/$tag.jsonl
  left=$(( end - $(date +%s) ))
  if [ $left -lt 120 ]; then echo "$(date -u +%T) no time left for $who" >> /work/peers-big/$name.log; exit 0; fi
  echo "$(date -u +%T) START $who steps $steps timeout $left uptime: $(uptime)" >> /work/peers-big/$name.log
  nice -n 19 $PY benchmarks/compare_loggers.py --rounds 0 --only $who --big-only $who --big-steps $steps \
    --big-timeout $left --budget-min 200 --out $out > ${out%.jsonl}.out 2>&1
  echo "$(date -u +%T) END $who rc $? uptime: $(uptime)" >> /work/peers-big/$name.log
done
