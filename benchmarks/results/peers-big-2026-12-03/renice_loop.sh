#!/bin/bash
# keep every benchmark child's autogroup at nice 19 (children start new sessions)
while pgrep -f compare_loggers >/dev/null; do
  for p in $(pgrep -f compare_loggers); do
    [ "$(cut -d' ' -f3 /proc/$p/autogroup 2>/dev/null)" = 19 ] || echo 19 > /proc/$p/autogroup 2>/dev/null
  done
  sleep 5
done
