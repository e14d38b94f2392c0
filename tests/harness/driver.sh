# shellcheck shell=bash
# Sourced by tests/e2e/run.sh, tests/k8s/run.sh and tests/k8s/healthy.sh: run a Python driver in
# the background and, whatever ends the script (its end, an error, INT, TERM, HUP), stop the
# driver and everything it recorded, delete the network namespaces it created, and remove the
# work dir. The driver records each child as `PID STARTTIME NAME` in WORK/pids
# (harness.proc.Supervisor) and each network namespace in WORK/netns (harness.netns) before
# creating it. The caller defines `say`.
#
#   driver_run WORK KEEP_VAR GRACE_S CMD [ARG...]
#       runs CMD (stdin /dev/null) and returns its exit status; the clean-up runs at the script's
#       exit. GRACE_S: seconds between TERM and KILL for the driver itself. KEEP_VAR: the name of
#       the variable that, when set, keeps WORK (every log) instead of removing it.

driver_pid=
_driver_work=
_driver_keep=
_driver_grace=10

driver_cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$driver_pid" ] && kill -0 "$driver_pid" 2>/dev/null; then
        kill -TERM "$driver_pid" 2>/dev/null || true
        for _ in $(seq $((_driver_grace * 5))); do kill -0 "$driver_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$driver_pid" 2>/dev/null || true
    fi
    # The driver stops its children by PID; if it was killed hard, stop the ones it recorded,
    # each only if that PID still has the start time recorded with it (PIDs get reused).
    if [ -f "$_driver_work/pids" ]; then
        while read -r pid start _; do
            now=$(sed -E 's/.*\) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f20) || continue
            if [ "$now" = "$start" ]; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done <"$_driver_work/pids"
    fi
    if [ -f "$_driver_work/netns" ]; then
        while read -r ns; do ip netns delete "$ns" 2>/dev/null || true; done <"$_driver_work/netns"
    fi
    # Mounts exist only in the children's private namespaces; never delete through a mount.
    if grep -qF " $_driver_work" /proc/self/mountinfo; then
        say "mounts under $_driver_work in this namespace; leaving it in place"
    elif [ -n "${!_driver_keep:-}" ]; then
        say "kept $_driver_work ($_driver_keep)"
    else
        rm -rf "$_driver_work"
    fi
    exit "$rc"
}

driver_run() {
    _driver_work=$1 _driver_keep=$2 _driver_grace=$3
    shift 3
    trap driver_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    # `exec` in the background subshell, so that $! is the driver itself, not a bash in between.
    (exec "$@" </dev/null) &
    driver_pid=$!
    local rc
    set +e
    wait "$driver_pid"
    rc=$?
    set -e
    driver_pid=
    return "$rc"
}
