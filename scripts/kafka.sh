#!/usr/bin/env bash
# Apache Kafka 4.x (KRaft) on 127.0.0.1 for local development and integration
# tests: one node by default, or a cluster of KAFKA_NODES nodes, each a
# broker+controller in one JVM, all voters of one static quorum. No docker:
# the jars come from Maven Central through mvn and are cached under
# .cache/kafka/<version>/libs.
#
# Usage: scripts/kafka.sh start|stop|status|reset|run-class <MainClass> [args...]
#        scripts/kafka.sh kill-node|stop-node|start-node N   (1 <= N <= KAFKA_NODES)
#
#   start      resolve jars (first run only), format storage (first run only),
#              start the broker in the background, wait until it answers
#              metadata requests, print KAFKA_BROKERS=127.0.0.1:<port>.
#              Idempotent: when already running it only reports.
#   stop       SIGTERM, bounded wait, then SIGKILL. Fine when already stopped.
#              A cluster's nodes get SIGTERM at once; those left when no
#              controller majority is (they cannot finish) get SIGKILL 5 s later.
#   status     exit 0 when running and answering, 1 when not running,
#              2 when the process is alive but does not answer.
#   reset      stop, then wipe the data dir (next start formats anew).
#   run-class  run any class with the Kafka classpath, e.g.
#              scripts/kafka.sh run-class org.apache.kafka.tools.TopicCommand \
#                --bootstrap-server 127.0.0.1:9092 --list
#   kill-node  SIGKILL node N (a crash: no controlled shutdown).
#   stop-node  stop node N as stop does.
#   start-node start node N again and wait until it answers.
#
# With KAFKA_NODES=N (N > 1) start/stop/status/reset act on all N nodes and
# start prints KAFKA_BROKERS=127.0.0.1:<port1>,...; node i listens on
# KAFKA_PORT+i-1 and KAFKA_CONTROLLER_PORT+i-1 and keeps its data in
# <data dir>/node-i. Topics Inarious creates there should use
# --replication=3 --min-insync-replicas=2 (internal topics do the same).
#
# Environment (defaults in brackets):
#   KAFKA_VERSION [4.1.2]          kafka_2.13 + kafka-tools version to resolve
#   KAFKA_LOG4J_VERSION [2.25.3]   log4j2 version of the SLF4J binding; keep it
#                                  equal to the log4j-core that Kafka pulls
#   KAFKA_NODES [1]                nodes; 1 is the single node as always
#   KAFKA_PORT [9092]              PLAINTEXT listener (clients) of node 1
#   KAFKA_CONTROLLER_PORT [9093; KAFKA_PORT+100 with KAFKA_NODES > 1]
#                                  CONTROLLER listener (KRaft quorum) of node 1
#   KAFKA_DATA_DIR [.cache/kafka/data; .cache/kafka/cluster with KAFKA_NODES > 1]
#                                  log.dirs (KRaft metadata + topic data)
#   KAFKA_FRESH [0]                1: wipe the data dir before start
#   KAFKA_HEAP_OPTS [-Xms256m -Xmx512m; -Xms256m -Xmx384m per node with
#                   KAFKA_NODES > 1]  broker heap
#   KAFKA_JVM_OPTS []              extra broker JVM flags
#   KAFKA_TOOLS_OPTS [-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1]
#                                  JVM flags for run-class and the ready check
#   KAFKA_START_TIMEOUT [90]       seconds to wait for the broker to answer
#   KAFKA_STOP_TIMEOUT [60]        seconds to wait after SIGTERM before SIGKILL
#   KAFKA_TXN_RETRY_BACKOFF_MS [1] the broker's add.partitions.to.txn.retry.backoff.ms
#                                  (Kafka's default: 20)
set -euo pipefail

SELF=$(realpath "${BASH_SOURCE[0]}")
# shellcheck source=scripts/service.sh
source "$(dirname "$SELF")/service.sh"
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)

KAFKA_VERSION=${KAFKA_VERSION:-4.1.2}
KAFKA_LOG4J_VERSION=${KAFKA_LOG4J_VERSION:-2.25.3}
KAFKA_NODES=${KAFKA_NODES:-1}
[[ $KAFKA_NODES =~ ^[1-9][0-9]*$ ]] || { echo "kafka.sh: KAFKA_NODES must be a positive integer" >&2; exit 64; }
KAFKA_PORT=${KAFKA_PORT:-9092}
# Node i takes KAFKA_PORT+i-1, so a cluster's controllers must start beyond
# the brokers' range, not at 9093.
if ((KAFKA_NODES > 1)); then
	KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 100))}
	KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx384m}
else
	KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
	KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
fi
KAFKA_FRESH=${KAFKA_FRESH:-0}
KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:-}
KAFKA_TOOLS_OPTS=${KAFKA_TOOLS_OPTS:--Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-60}
TXN_RETRY_BACKOFF_MS=${KAFKA_TXN_RETRY_BACKOFF_MS:-1}

CACHE=$ROOT/.cache/kafka
LIBS=$CACHE/$KAFKA_VERSION/libs
CONF=$CACHE/config
LOGDIR=$CACHE/logs
# realpath -m: a relative KAFKA_DATA_DIR is taken from the caller's cwd, and
# log.dirs must be absolute so the broker does not depend on its own cwd.
if ((KAFKA_NODES > 1)); then
	CLUSTER_DATA=$(realpath -m "${KAFKA_DATA_DIR:-$CACHE/cluster}")
else
	CLUSTER_DATA=
fi
# Every node's address: the bootstrap list clients get.
BOOTSTRAP=
for ((i = 0; i < KAFKA_NODES; i++)); do BOOTSTRAP+="${BOOTSTRAP:+,}127.0.0.1:$((KAFKA_PORT + i))"; done

# select_node I points the per-node globals (ports, data dir, config, log,
# pid file) at node I. A single node keeps the names it always had, so an
# existing .cache/kafka/data stays usable.
select_node() {
	NODE=$1
	PORT=$((KAFKA_PORT + NODE - 1))
	CPORT=$((KAFKA_CONTROLLER_PORT + NODE - 1))
	BROKERS=127.0.0.1:$PORT
	if [[ -z $CLUSTER_DATA ]]; then
		DATA=$(realpath -m "${KAFKA_DATA_DIR:-$CACHE/data}")
		LOG=$LOGDIR/server.log
		PIDFILE=$CACHE/kafka.pid
		SERVER_PROPS=$CONF/server.properties
	else
		DATA=$CLUSTER_DATA/node-$NODE
		LOG=$LOGDIR/node-$NODE.log
		PIDFILE=$CACHE/kafka-node-$NODE.pid
		SERVER_PROPS=$CONF/node-$NODE.properties
	fi
}
select_node 1

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------- jars

# Writes the tiny pom whose only job is to let `mvn dependency:copy-dependencies`
# resolve the broker (kafka_2.13), the CLI tools (kafka-tools) and a logging
# binding. Kafka 4.x pulls slf4j-api 1.7.36 and log4j-core 2.x but no binding,
# so without log4j-slf4j-impl the broker would log nothing (SLF4J NOP).
write_pom() {
	cat >"$1" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by scripts/kafka.sh; only used to fetch the Kafka jars -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.inarious</groupId>
  <artifactId>kafka-libs</artifactId>
  <version>${KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>${KAFKA_VERSION}</version>
      <exclusions>
        <!-- Connect (jetty, jersey, ...) is only for the connect-plugin-path
             tool; topic/console tools do not need it. -->
        <exclusion>
          <groupId>org.apache.kafka</groupId>
          <artifactId>connect-runtime</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
    <!-- SLF4J 1.7 -> log4j2 binding, the one Kafka's own distribution ships. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>${KAFKA_LOG4J_VERSION}</version>
    </dependency>
    <!-- Pin core to the binding's version so api/core/binding never mix. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>${KAFKA_LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.8.1</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
}

libs_ready() {
	[[ -f $LIBS/.complete && -f $LIBS/kafka_2.13-$KAFKA_VERSION.jar ]]
}

# Resolves the jars once per version; later calls do not run mvn at all.
ensure_libs() {
	libs_ready && return 0
	mkdir -p "$CACHE/$KAFKA_VERSION"
	# A second concurrent caller waits here instead of racing into the same dir.
	exec 8>"$CACHE/$KAFKA_VERSION/.resolve.lock"
	flock -w 900 8 || die "timed out waiting for another jar resolution"
	if ! libs_ready; then
		command -v mvn >/dev/null || die "mvn not found (needed once to fetch Kafka $KAFKA_VERSION)"
		local work=$CACHE/$KAFKA_VERSION/mvn tmp=$LIBS.tmp
		mkdir -p "$work"
		write_pom "$work/pom.xml"
		rm -rf "$tmp"
		log "resolving Kafka $KAFKA_VERSION jars with mvn (first run only; log: $work/mvn.log)"
		if ! mvn -B -q -f "$work/pom.xml" dependency:copy-dependencies \
			-DincludeScope=runtime -DoutputDirectory="$tmp" >"$work/mvn.log" 2>&1; then
			tail -n 30 "$work/mvn.log" >&2
			die "mvn could not resolve Kafka $KAFKA_VERSION"
		fi
		[[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar && -f $tmp/kafka-tools-$KAFKA_VERSION.jar ]] ||
			die "mvn finished but kafka jars are missing in $tmp"
		touch "$tmp/.complete"
		# Rename last so an interrupted download never looks complete.
		rm -rf "$LIBS"
		mv "$tmp" "$LIBS"
	fi
	exec 8>&-
}

# ---------------------------------------------------------------- config

write_configs() {
	mkdir -p "$CONF" "$LOGDIR"
	local voters="" i rf=$((KAFKA_NODES < 3 ? KAFKA_NODES : 3)) isr=$((KAFKA_NODES < 2 ? 1 : 2))
	for ((i = 1; i <= KAFKA_NODES; i++)); do
		voters+="${voters:+,}$i@127.0.0.1:$((KAFKA_CONTROLLER_PORT + i - 1))"
	done
	# Static voter (controller.quorum.voters) rather than a dynamic quorum
	# (--standalone + controller.quorum.bootstrap.servers): a dynamic quorum
	# stores the controller endpoint in the metadata log at format time, a
	# static one takes it from this file on every start, so changing
	# KAFKA_CONTROLLER_PORT never strands the formatted data.
	cat >"$SERVER_PROPS" <<EOF
# generated by scripts/kafka.sh on every start; edit the script, not this file
process.roles=broker,controller
node.id=${NODE}
controller.quorum.voters=${voters}
listeners=PLAINTEXT://127.0.0.1:${PORT},CONTROLLER://127.0.0.1:${CPORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${DATA}

# internal topics: replication min(nodes, 3), min ISR min(nodes, 2), so one
# node of a cluster may die without stopping groups or transactions
num.partitions=1
default.replication.factor=${rf}
min.insync.replicas=${isr}
offsets.topic.replication.factor=${rf}
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=${rf}
transaction.state.log.min.isr=${isr}
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=${rf}
share.coordinator.state.topic.min.isr=${isr}

# transactions (the dedupe stage): under transaction.version 2 a produce
# that opens a transaction while the last one's markers are still being
# written is retried by the broker after this backoff; Kafka's 20 ms made
# each flush 3x slower here (BENCHMARKS, "Dedupe latency")
add.partitions.to.txn.retry.backoff.ms=${TXN_RETRY_BACKOFF_MS}

# tests: no 3 s wait before the first rebalance, topics only created on purpose
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false

# small footprint; the cleaner needs MORE than 1 MiB per cleaner thread
# (KafkaConfig rejects exactly 1048576), default is 128 MiB of heap
log.cleaner.dedupe.buffer.size=2097152
log.cleaner.threads=1
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
EOF

	# Broker logging: everything to stdout, which start redirects to $LOG.
	cat >"$CONF/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF

}

write_tool_configs() {
	mkdir -p "$CONF"
	# Tools: warnings only, on stderr, so their stdout stays clean for tests.
	cat >"$CONF/tools-log4j2.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF

	# Short client timeouts so a readiness probe fails fast instead of
	# retrying for the admin client's default 60 s.
	cat >"$CONF/probe-client.properties" <<'EOF'
request.timeout.ms=5000
default.api.timeout.ms=8000
EOF
}

# ---------------------------------------------------------------- storage

# A KRaft cluster id is a Uuid printed as unpadded URL-safe base64 of 16
# bytes; Kafka never hands out one starting with '-' (it reads as a flag).
gen_cluster_id() {
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		[[ $id != -* ]] && break
	done
	printf '%s\n' "$id"
}

is_formatted() { [[ -f $DATA/meta.properties ]]; }

# Refuses to rm -rf anything that does not look like our Kafka data dir, as
# KAFKA_DATA_DIR may point anywhere.
wipe_data() {
	[[ -e $DATA ]] || return 0
	if [[ $DATA == / || $DATA == "$ROOT" || $DATA == "$HOME" ]] ||
		! { is_formatted || [[ -z $(ls -A "$DATA") ]]; }; then
		die "refusing to wipe $DATA: it is not an (empty or formatted) Kafka data dir"
	fi
	log "wiping data dir $DATA"
	rm -rf "$DATA"
}

# All nodes of a cluster must be formatted with one id, kept next to their
# data dirs.
cluster_id() {
	if [[ -z $CLUSTER_DATA ]]; then
		gen_cluster_id
		return
	fi
	mkdir -p "$CLUSTER_DATA"
	[[ -s $CLUSTER_DATA/cluster.id ]] || gen_cluster_id >"$CLUSTER_DATA/cluster.id"
	cat "$CLUSTER_DATA/cluster.id"
}

# wipe_all wipes every node's data dir, and the cluster's id with them.
wipe_all() {
	local i
	for ((i = 1; i <= KAFKA_NODES; i++)); do
		select_node "$i"
		wipe_data
	done
	if [[ -n $CLUSTER_DATA && -d $CLUSTER_DATA ]]; then
		rm -f "$CLUSTER_DATA/cluster.id"
		rmdir "$CLUSTER_DATA" 2>/dev/null || true
	fi
}

format_storage() {
	is_formatted && return 0
	mkdir -p "$DATA"
	local id
	id=$(cluster_id)
	log "formatting $DATA (cluster id $id)"
	# 4.x: --cluster-id is mandatory; no --standalone because the quorum is
	# static (controller.quorum.voters), see write_configs.
	if ! run_java_tool kafka.tools.StorageTool format --config "$SERVER_PROPS" \
		--cluster-id "$id" >"$LOGDIR/format.log" 2>&1; then
		cat "$LOGDIR/format.log" >&2
		die "storage format failed"
	fi
}

# ---------------------------------------------------------------- process

classpath() { printf '%s/*' "$LIBS"; }

run_java_tool() {
	# shellcheck disable=SC2086 # KAFKA_TOOLS_OPTS is a list of JVM flags
	java $KAFKA_TOOLS_OPTS -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$CONF/tools-log4j2.properties" \
		-cp "$(classpath)" "$@"
}

# Prints the broker pid when the pid file names a live kafka.Kafka process
# started from our config (guards against pid reuse after a reboot).
running_pid() {
	local pid cmd
	[[ -f $PIDFILE ]] || return 1
	pid=$(<"$PIDFILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	pid_alive "$pid" || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmd == *kafka.Kafka*"$SERVER_PROPS"* ]] || return 1
	printf '%s\n' "$pid"
}

port_open() {
	# shellcheck disable=SC2016 # $1 is expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# An open port is not enough: the socket server accepts before the broker
# has caught up with the metadata log, and another server may hold the port
# (the project's in-process kfake broker also defaults to 9092). So: a real
# metadata round trip (DescribeCluster) whose cluster id must be ours.
answers() {
	local want got
	port_open "$PORT" || return 1
	want=$(sed -n 's/^cluster\.id=//p' "$DATA/meta.properties" 2>/dev/null) || return 1
	[[ -n $want ]] || return 1
	[[ -f $CONF/probe-client.properties ]] || write_tool_configs
	got=$(timeout 30 "$SELF" run-class org.apache.kafka.tools.ClusterTool cluster-id \
		--bootstrap-server "$BROKERS" --config "$CONF/probe-client.properties" 2>/dev/null) || return 1
	[[ $got == "Cluster ID: $want" ]]
}

wait_ready() {
	local pid=$1 deadline=$((SECONDS + KAFKA_START_TIMEOUT))
	while :; do
		if ! pid_alive "$pid"; then
			tail -n 40 "$LOG" >&2 || true
			rm -f "$PIDFILE"
			log "node $NODE exited during startup (log: $LOG)"
			return 1
		fi
		answers && return 0
		if ((SECONDS >= deadline)); then
			tail -n 40 "$LOG" >&2 || true
			log "node $NODE did not answer within ${KAFKA_START_TIMEOUT}s"
			return 1
		fi
		sleep 0.5
	done
}

print_ready() {
	echo "KAFKA_BROKERS=$BOOTSTRAP"
}

# launch starts the selected node in the background unless it runs already.
launch() {
	local pid p
	if pid=$(running_pid); then
		return 0
	fi
	rm -f "$PIDFILE"
	# Someone else on our ports would make us wait 90 s for nothing.
	for p in "$PORT" "$CPORT"; do
		port_open "$p" && die "port $p is already in use by another process (set KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
	done

	write_configs
	format_storage

	# Keep the previous run's log for post-mortems, start a fresh one.
	[[ -f $LOG ]] && mv -f "$LOG" "$LOG.1"
	log "starting Kafka $KAFKA_VERSION node $NODE on $BROKERS (data: $DATA, log: $LOG)"
	# setsid + nohup: the broker must outlive this script and not die with
	# the caller's terminal or process group (Ctrl-C, SIGHUP). The subshell
	# execs all the way down, so $! is the java pid. 8>&- 9>&-: the broker
	# must not inherit (and hold forever) our lock fds.
	# shellcheck disable=SC2086 # heap/JVM opts are lists of flags
	(
		cd "$CACHE"
		exec setsid nohup java -server $KAFKA_HEAP_OPTS \
			-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
			-Djava.awt.headless=true \
			-Dlog4j2.configurationFile="$CONF/log4j2.properties" \
			-Dkafka.logs.dir="$LOGDIR" \
			$KAFKA_JVM_OPTS \
			-cp "$(classpath)" kafka.Kafka "$SERVER_PROPS" \
			</dev/null >>"$LOG" 2>&1 8>&- 9>&-
	) &
	echo "$!" >"$PIDFILE"
}

# await waits until the selected node answers, stopping every node when it
# does not (a half-started cluster helps nobody).
await() {
	local pid
	pid=$(running_pid) || { stop_all; die "node $NODE is not running (log: $LOG)"; }
	if ! wait_ready "$pid"; then
		stop_all
		exit 1
	fi
	log "node $NODE running (pid $pid), log: $LOG"
}

# A cluster's nodes all start before any is waited for: a controller
# quorum of N voters elects no leader until a majority runs.
start_broker() {
	local t0=$SECONDS i
	if [[ $KAFKA_FRESH == 1 ]]; then
		stop_all
		wipe_all
	fi
	ensure_libs
	write_tool_configs
	for ((i = 1; i <= KAFKA_NODES; i++)); do
		select_node "$i"
		launch
	done
	for ((i = 1; i <= KAFKA_NODES; i++)); do
		select_node "$i"
		await
	done
	log "ready after $((SECONDS - t0))s"
	print_ready
}

stop_broker() { stop_service "$KAFKA_STOP_TIMEOUT"; }

# stop_all stops a cluster's nodes all at once. Once no majority of the
# controllers is left, a node still shutting down waits for a quorum that
# will not come back (the last raft leader does, at least): it gets a few
# seconds, then SIGKILL, instead of KAFKA_STOP_TIMEOUT.
stop_all() {
	local i pid deadline quorumless=
	local -a pids=() files=() alive=()
	if ((KAFKA_NODES == 1)); then
		stop_broker
		return
	fi
	for ((i = 1; i <= KAFKA_NODES; i++)); do
		select_node "$i"
		if pid=$(running_pid); then
			log "node $i: stopping pid $pid (SIGTERM)"
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
		files+=("$PIDFILE")
	done
	deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
	while :; do
		alive=()
		for pid in "${pids[@]}"; do pid_alive "$pid" && alive+=("$pid"); done
		((${#alive[@]} == 0)) && break
		if ((${#alive[@]} <= KAFKA_NODES / 2)); then
			quorumless=${quorumless:-$SECONDS}
		fi
		if ((SECONDS >= deadline)) || { [[ -n $quorumless ]] && ((SECONDS >= quorumless + 5)); }; then
			log "pids ${alive[*]} still alive (no controller quorum left, or ${KAFKA_STOP_TIMEOUT}s passed); SIGKILL"
			kill -KILL "${alive[@]}" 2>/dev/null || true
			for pid in "${alive[@]}"; do
				deadline=$((SECONDS + 10))
				while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
				pid_alive "$pid" && die "pid $pid survived SIGKILL"
			done
		fi
		sleep 0.2
	done
	rm -f "${files[@]}"
	log "stopped"
}

status_node() {
	local pid
	if ! pid=$(running_pid); then
		log "node $NODE not running"
		return 1
	fi
	if ! answers; then
		log "node $NODE: pid $pid is alive but $BROKERS does not answer with our cluster id"
		return 2
	fi
	log "node $NODE running (pid $pid) on $BROKERS"
}

# status_broker exits with the worst of the nodes' statuses.
status_broker() {
	local i rc=0 r
	for ((i = 1; i <= KAFKA_NODES; i++)); do
		select_node "$i"
		r=0
		status_node || r=$?
		((r > rc)) && rc=$r
	done
	((rc == 0)) && print_ready
	return "$rc"
}

# node_arg selects node $1 after checking it is one of the cluster's.
node_arg() {
	[[ ${1:-} =~ ^[1-9][0-9]*$ ]] && (($1 <= KAFKA_NODES)) ||
		die "node must be 1..$KAFKA_NODES, not '${1:-}' (set KAFKA_NODES as for start)"
	select_node "$1"
}

# kill_node is a crash: SIGKILL, no controlled shutdown, no leader handover.
kill_node() {
	local pid
	if ! pid=$(running_pid); then
		rm -f "$PIDFILE"
		log "node $NODE not running"
		return 0
	fi
	log "node $NODE: SIGKILL pid $pid"
	kill -KILL "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + 10))
	while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
	pid_alive "$pid" && die "pid $pid survived SIGKILL"
	rm -f "$PIDFILE"
}

# Serializes start/stop/reset of this checkout's broker (e.g. parallel test
# packages all calling start).
take_lock() {
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock -w $((KAFKA_START_TIMEOUT + KAFKA_STOP_TIMEOUT + 900)) 9 ||
		die "timed out waiting for another kafka.sh"
}

usage() {
	sed -n '2,/^set -euo/p' "$SELF" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

main() {
	local cmd=${1:-} pid
	[[ $# -gt 0 ]] && shift
	case $cmd in
	start)
		take_lock
		start_broker
		;;
	stop)
		take_lock
		stop_all
		;;
	status)
		status_broker
		;;
	reset)
		take_lock
		stop_all
		wipe_all
		;;
	kill-node)
		node_arg "${1:-}"
		take_lock
		kill_node
		;;
	stop-node)
		node_arg "${1:-}"
		take_lock
		stop_broker
		;;
	start-node)
		node_arg "${1:-}"
		take_lock
		ensure_libs
		write_tool_configs
		launch
		pid=$(running_pid) || die "node $NODE is not running (log: $LOG)"
		wait_ready "$pid" || {
			stop_broker
			exit 1
		}
		log "node $NODE running (pid $pid), log: $LOG"
		print_ready
		;;
	run-class)
		[[ $# -ge 1 ]] || die "usage: $0 run-class <MainClass> [args...]"
		ensure_libs
		[[ -f $CONF/tools-log4j2.properties ]] || write_tool_configs
		# shellcheck disable=SC2086 # KAFKA_TOOLS_OPTS is a list of JVM flags
		exec java $KAFKA_TOOLS_OPTS -Djava.awt.headless=true \
			-Dlog4j2.configurationFile="$CONF/tools-log4j2.properties" \
			-cp "$(classpath)" "$@"
		;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		exit 64
		;;
	esac
}

main "$@"
