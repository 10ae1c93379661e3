#!/bin/bash
# 1M clients on Apache Kafka (scripts/kafka.sh on 19092): worker and API as
# separate processes, one event per client from inarious-bench fill; prints
# RSS and local disk of each once the API sees every client.
# Needs /tmp/inarious-now and /tmp/ibench-now: go build ./cmd/inarious ./cmd/inarious-bench.
set -u
cd "$(dirname "$0")/.."
export KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093
KAFKA_FRESH=1 scripts/kafka.sh start >/dev/null 2>&1
d=$(mktemp -d)
/tmp/inarious-now worker --brokers 127.0.0.1:19092 --data-dir $d/w --log-level warn & W=$!
/tmp/inarious-now api --brokers 127.0.0.1:19092 --data-dir $d/a --listen 127.0.0.1:18190 --log-level warn & A=$!
until curl -sf 127.0.0.1:18190/readyz >/dev/null; do sleep 0.5; done
t0=$(date +%s.%N)
/tmp/ibench-now fill -brokers 127.0.0.1:19092 -clients 1000000
until [ "$(curl -s '127.0.0.1:18190/usage?limit=1' | python3 -c 'import sys,json; print(json.load(sys.stdin)["total_clients"])')" -ge 1000000 ]; do sleep 1; done
t1=$(date +%s.%N)
echo "caught up after fill start: $(echo "$t1 - $t0" | bc) s"
sleep 5
for p in $W $A; do grep -E 'VmRSS|VmHWM' /proc/$p/status | tr '\n' ' '; echo " pid $p"; done
du -sh $d/w $d/a
du -sh $d/w/* $d/a/* 2>/dev/null
curl -s -o /dev/null -w 'GET /usage/{client} %{time_total}s\n' 127.0.0.1:18190/usage/10.0.0.1
kill -TERM $W $A; wait
rm -rf $d
