# Sourced by kafka.sh and registry.sh: what both need to stop a service they
# started in the background. The caller defines log, die, running_pid and
# PIDFILE.

# pid_alive is true for a running process (a zombie does not count).
pid_alive() {
	local pid=$1 stat
	kill -0 "$pid" 2>/dev/null || return 1
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# stop_service TIMEOUT sends SIGTERM to the running service, SIGKILL if it
# is still alive after TIMEOUT seconds, and removes the pid file.
stop_service() {
	local timeout=$1 pid deadline
	if ! pid=$(running_pid); then
		rm -f "$PIDFILE"
		log "not running"
		return 0
	fi
	log "stopping pid $pid (SIGTERM, up to ${timeout}s)"
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + timeout))
	while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
	if pid_alive "$pid"; then
		log "still alive after ${timeout}s; SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		deadline=$((SECONDS + 10))
		while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
		pid_alive "$pid" && die "pid $pid survived SIGKILL"
	fi
	rm -f "$PIDFILE"
	log "stopped"
}
