#!/bin/sh
# Contract tests of messaging-shellfuncs (agents/messaging-shellfuncs.in):
# helper exit-code mapping and capture, deadlines, process identity, and stop
# escalation, against fake helpers and throwaway processes. No daemon needed.
#
# Environment: OCF_ROOT, MSG_FUNCTIONS_DIR (the configured shellfuncs).
# Prints one line per check; exits 1 if any failed.
#
# shellcheck disable=SC2016 # fake helpers' scripts expand when they run
# shellcheck disable=SC2317 # cleanup() runs from the EXIT trap
# shellcheck disable=SC2034 # OCF_RESKEY_* are read by the sourced functions

: "${OCF_ROOT:=/usr/lib/ocf}"
export OCF_ROOT
OCF_RESOURCE_INSTANCE=shellfuncs-test
export OCF_RESOURCE_INSTANCE
# What the functions keep between actions (msg_state_path) stays in this run.
HA_RSCTMP=$(mktemp -d)
export HA_RSCTMP
# shellcheck source=/usr/lib/ocf/lib/heartbeat/ocf-shellfuncs
. "$OCF_ROOT/lib/heartbeat/ocf-shellfuncs"
# shellcheck disable=SC1091 # configured at build time
. "$MSG_FUNCTIONS_DIR/messaging-shellfuncs"

work=$(mktemp -d)
children=""
cleanup()
{
	for pid in $children; do
		kill -s KILL "$pid" 2>/dev/null
		kill -s CONT "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$work" "$HA_RSCTMP"
}
trap cleanup EXIT
# ocf_log writes to stderr here; keep the test output readable.
exec 3>&2 2>"$work/log"

failures=0
ok()
{
	echo "ok - $1"
}
not_ok()
{
	echo "not ok - $1: $2"
	failures=$((failures + 1))
}
# expect NAME EXPECTED ACTUAL
expect()
{
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1" "expected [$2], got [$3]"
	fi
}

# spawn CMD...: runs CMD in the background, records it for cleanup, sets SPAWNED
spawn()
{
	"$@" &
	SPAWNED=$!
	children="$children $SPAWNED"
}

MSG_HELPER_DIR="$work/helpers"
mkdir "$MSG_HELPER_DIR"
# fake_helper NAME SCRIPT-BODY
fake_helper()
{
	printf '#!/bin/sh\n%s\n' "$2" >"$MSG_HELPER_DIR/$1"
	chmod +x "$MSG_HELPER_DIR/$1"
}

###########################################################################
# msg_capture and msg_helper_run

msg_capture sh -c 'echo out1; echo out2; echo err1 >&2; echo err2 >&2; exit 3'
expect "msg_capture returns the exit status" 3 $?
expect "msg_capture keeps stdout apart" "out1
out2" "$MSG_CAPTURE_OUT"
expect "msg_capture keeps stderr apart" "err1
err2" "$MSG_CAPTURE_ERR"

msg_capture sh -c 'echo only-out'
expect "msg_capture with an empty stderr" "0:only-out:" "$?:$MSG_CAPTURE_OUT:$MSG_CAPTURE_ERR"

fake_helper ok 'echo 4242; echo extra'
msg_helper_run ok --flag
expect "helper 0 is OCF_SUCCESS, stdout kept" "0:4242
extra:" "$?:$MSG_HELPER_OUT:$MSG_HELPER_REASON"

for code in 1 5 6 7 190; do
	fake_helper "code$code" "echo 'reason for $code' >&2; exit $code"
	msg_helper_run "code$code"
	expect "helper $code passes through with its reason" "$code:reason for $code" "$?:$MSG_HELPER_REASON"
done

fake_helper usage 'echo "--port: bad value" >&2; exit 2'
msg_helper_run usage
rc=$?
expect "helper usage error (2) is an agent bug: OCF_ERR_GENERIC, never OCF_ERR_ARGS" 1 $rc
case "$MSG_HELPER_REASON" in
"internal error: usage rejected its arguments: --port: bad value")
	ok "helper usage error names the agent bug"
	;;
*)
	not_ok "helper usage error names the agent bug" "$MSG_HELPER_REASON"
	;;
esac

fake_helper crash 'kill -s KILL $$'
msg_helper_run crash
expect "helper killed by a signal is OCF_ERR_GENERIC" 1 $?
case "$MSG_HELPER_REASON" in
*"killed by signal 9"*)
	ok "a helper's death by signal is the reason"
	;;
*)
	not_ok "a helper's death by signal is the reason" "$MSG_HELPER_REASON"
	;;
esac

fake_helper odd 'exit 42'
msg_helper_run odd
expect "unknown helper code is OCF_ERR_GENERIC" 1 $?

fake_helper silent 'exit 7'
msg_helper_run silent
rc=$?
if [ "$rc" -eq 7 ] && [ -n "$MSG_HELPER_REASON" ]; then
	ok "a failing helper without a reason still gives one"
else
	not_ok "a failing helper without a reason still gives one" "$rc:$MSG_HELPER_REASON"
fi

fake_helper chatty 'echo first >&2; echo "the reason" >&2; exit 1'
msg_helper_run chatty
expect "the reason is the last stderr line" "the reason" "$MSG_HELPER_REASON"

msg_helper_run absent
expect "a missing helper is OCF_ERR_INSTALLED" 5 $?

fake_helper args 'for a in "$@"; do printf "[%s]" "$a"; done'
msg_helper_run args "two words" "" "*"
expect "arguments reach the helper intact" "[two words][][*]" "$MSG_HELPER_OUT"

fake_helper query 'echo 11; echo 12'
msg_helper_query query
expect "msg_helper_query: data on success" "0:11
12:" "$?:$MSG_HELPER_OUT:$MSG_HELPER_REASON"
fake_helper query 'echo "no such thing" >&2; exit 7'
msg_helper_query query
expect "msg_helper_query: the reason on failure, no data" "7::no such thing" "$?:$MSG_HELPER_OUT:$MSG_HELPER_REASON"
fake_helper query 'echo "bad option" >&2; exit 2'
msg_helper_query query
expect "msg_helper_query maps codes like msg_helper_run" 1 $?
msg_helper_query absent
expect "msg_helper_query: a missing helper is OCF_ERR_INSTALLED" 5 $?

###########################################################################
# msg_report

OCF_RESKEY_CRM_meta_interval=0 __OCF_ACTION=monitor
out=$(msg_report 7 "nothing here" 2>&1)
expect "a probe's 'not running' is no exit reason" 0 "$(printf '%s\n' "$out" | grep -c '^ocf-exit-reason:')"
OCF_RESKEY_CRM_meta_interval=10000
out=$(msg_report 1 "it broke" 2>&1)
expect "a failure is an exit reason" "ocf-exit-reason:it broke" "$(printf '%s\n' "$out" | grep '^ocf-exit-reason:')"
msg_report 0 "fine" 2>/dev/null
expect "msg_report returns its code" 0 $?

###########################################################################
# deadlines

OCF_RESKEY_CRM_meta_timeout=10000
left=$(msg_deadline_ms)
if [ "$left" -le 9000 ] && [ "$left" -gt 5000 ]; then
	ok "deadline is the timeout minus a margin ($left ms of 10000)"
else
	not_ok "deadline is the timeout minus a margin" "$left"
fi
left=$(msg_deadline_ms 200)
if [ "$left" -le 9800 ] && [ "$left" -gt 9000 ]; then
	ok "deadline with an explicit margin ($left ms)"
else
	not_ok "deadline with an explicit margin" "$left"
fi
OCF_RESKEY_CRM_meta_timeout=900
msg_deadline_ms >/dev/null
expect "no time left is reported" 1 $?
unset OCF_RESKEY_CRM_meta_timeout
expect "without a timeout, the default applies" "$MSG_DEFAULT_TIMEOUT_MS" "$(msg_timeout_ms)"

###########################################################################
# parameters

for value in true False YES no on 0 1; do
	msg_is_bool "$value"
	expect "msg_is_bool accepts '$value'" 0 $?
done
for value in "" maybe tru 2 Yes; do
	msg_is_bool "$value"
	expect "msg_is_bool refuses '$value'" 1 $?
done

printf 'probe\npw\n' >"$work/secret"
chmod 600 "$work/secret"
msg_secret_file_ok "$work/secret"
expect "msg_secret_file_ok accepts root's 0600 file" "0:" "$?:$MSG_SECRET_REASON"
chmod 640 "$work/secret"
msg_secret_file_ok "$work/secret"
expect "msg_secret_file_ok refuses a group-readable file" \
	"1:$work/secret has mode 640: it holds a password and must not be readable by group or others (chmod 600)" \
	"$?:$MSG_SECRET_REASON"
chmod 600 "$work/secret"
chown nobody "$work/secret"
msg_secret_file_ok "$work/secret"
expect "msg_secret_file_ok refuses a file root does not own" \
	"1:$work/secret must be owned by root (it holds a password)" "$?:$MSG_SECRET_REASON"
msg_secret_file_ok "$work/absent"
expect "msg_secret_file_ok refuses a missing file" "1:$work/absent does not exist or is not a regular file" \
	"$?:$MSG_SECRET_REASON"

###########################################################################
# /proc reading

msg_proc_stat $$
rc=$?
if [ "$rc" -eq 0 ] && [ -n "$MSG_PROC_START" ] && [ -n "$MSG_PROC_STATE" ]; then
	ok "msg_proc_stat reads a live process"
else
	not_ok "msg_proc_stat reads a live process" "$rc:$MSG_PROC_STATE:$MSG_PROC_START"
fi

# A zombie: a child whose parent execs into sleep and so never reaps it.
spawn sh -c 'sh -c "exit 0" & echo $! >"$1"; exec sleep 30' sh "$work/zombie"
sleep 0.5
zombie=$(cat "$work/zombie")
msg_proc_stat "$zombie"
expect "a zombie counts as dead" 1 $?

# A process name with spaces and parentheses does not shift the fields.
cp /bin/sleep "$work/a) b (c"
spawn "$work/a) b (c" 30
odd=$SPAWNED
sleep 0.2
msg_proc_stat "$odd"
expect "msg_proc_stat parses a command name with ') ' in it" "0:S:a) b (c" "$?:$MSG_PROC_STATE:$MSG_PROC_COMM"

# A frozen process is found among live ones; none frozen is no answer.
spawn sleep 30
frozen=$SPAWNED
kill -s STOP "$frozen"
sleep 0.1
msg_first_stopped $$ "$odd" "$frozen"
expect "msg_first_stopped names the SIGSTOPped process" "0:$frozen:$(cat "/proc/$frozen/comm")" "$?:$MSG_STOPPED_PID:$MSG_STOPPED_COMM"
msg_first_stopped $$ "$odd" "$zombie"
expect "msg_first_stopped finds none among running ones" "1:" "$?:$MSG_STOPPED_PID"

printf '%32d\n' 123 >"$work/padded.pid"
msg_pid_file_pid "$work/padded.pid"
expect "pid files padded with blanks are read" "0:123" "$?:$MSG_PID_FILE_PID"
echo garbage >"$work/bad.pid"
msg_pid_file_pid "$work/bad.pid"
expect "garbage in a pid file is no pid" 1 $?

###########################################################################
# process identity through msg-probe process

spawn sleep 30
stranger=$SPAWNED
echo "$stranger" >"$work/stale.pid"
fake_helper msg-probe 'echo "pid file $4 names PID '"$stranger"' (/usr/bin/sleep), not the daemon" >&2; exit 7'
msg_process_status "$work/stale.pid" /usr/sbin/nothing
expect "a stale pid file is 'not running'" 7 $?
if grep -q "WARNING: not signalling PID $stranger" "$work/log"; then
	ok "a pid file naming a live stranger is logged as a warning"
else
	not_ok "a pid file naming a live stranger is logged as a warning" "$(cat "$work/log")"
fi

mkdir "$work/home" "$work/elsewhere"
spawn sh -c 'cd "$1" && exec sleep 30' sh "$work/home"
daemon=$SPAWNED
fake_helper msg-probe 'echo '"$daemon"'; echo 99999999'
sleep 0.2
msg_process_tree --cwd "$work/home" "$work/x.pid" /usr/bin/sleep
expect "the daemon in its own directory runs" "0:$daemon:$daemon 99999999" "$?:$MSG_PID:$MSG_PIDS"
msg_process_status --cwd "$work/elsewhere" "$work/x.pid" /usr/bin/sleep
expect "the same binary working elsewhere is another instance" "7:" "$?:$MSG_PID"

fake_helper msg-probe 'case "$*" in *"--exe /a b/c --exe /d"*) echo 1;; *) echo "bad args: $*" >&2; exit 2;; esac'
msg_process_status "$work/x.pid" "/a b/c" /d
expect "every exe is passed as its own --exe" "0:1" "$?:$MSG_PID"

###########################################################################
# what is kept between actions: derived values, the daemon's identity

# File times advance in clock ticks: a stamp taken in the tick a source was
# written is not newer than it, and the values count as stale (safe, and
# never the case for a configuration written before the resource started).
echo "setting = 1" >"$work/daemon.conf"
sleep 0.01
msg_cache_load settings "$work/daemon.conf" "$work/daemon.conf"
expect "nothing is kept before anything was stored" 1 $?
msg_cache_begin settings
msg_cache_store settings "$work/daemon.conf" /var/queue "" last
msg_cache_load settings "$work/daemon.conf" "$work/daemon.conf"
expect "stored values come back, empty ones too" "0:/var/queue

last" "$?:$MSG_CACHE"
msg_cache_load settings "$work/other.conf"
expect "values stored for another key are not used" 1 $?
msg_cache_begin lines
msg_cache_store_lines lines key "pathrun='/run/news'
two words *"
msg_cache_load lines key
expect "lines of a text are kept as they are, blanks and globs too" "0:pathrun='/run/news'
two words *" "$?:$MSG_CACHE"
sleep 0.01
echo "setting = 2" >"$work/daemon.conf"
msg_cache_load settings "$work/daemon.conf" "$work/daemon.conf"
expect "a source changed since the stamp makes them stale" 1 $?
msg_cache_load settings "$work/daemon.conf" "$work/missing.conf"
expect "a source that is gone makes them stale" 1 $?
msg_cache_begin settings
printf '%s\n' "$work/daemon.conf" /var/queue >"$HA_RSCTMP/messaging/${0##*/}-$OCF_RESOURCE_INSTANCE.settings"
msg_cache_load settings "$work/daemon.conf" "$work/daemon.conf"
expect "a half-written store is not used" 1 $?
(
	OCF_RESOURCE_INSTANCE=""
	msg_cache_begin settings
	msg_cache_store settings key value
	msg_cache_load settings key
	expect "nothing is kept for an agent run without a resource name" 1 $?
)
if [ "$(stat -c %a "$HA_RSCTMP/messaging")" = 700 ]; then
	ok "the state directory is root's alone"
else
	not_ok "the state directory is root's alone" "mode $(stat -c %a "$HA_RSCTMP/messaging")"
fi

# The identity of a daemon that msg-probe process accepted is kept: later
# checks of the same process run no helper; any change asks it again.
fake_helper msg-probe 'echo "$*" >>"'"$work"'/process-calls"; echo '"$daemon"
printf '%8d\n' "$daemon" >"$work/home.pid"
sleep 0.01
calls()
{
	wc -l <"$work/process-calls" 2>/dev/null | tr -d ' ' || echo 0
}
msg_process_status --cwd "$work/home" "$work/home.pid" /usr/bin/sleep
expect "the first check asks the helper" "0:$daemon:1" "$?:$MSG_PID:$(calls)"
msg_process_status --cwd "$work/home" "$work/home.pid" /usr/bin/sleep
expect "the same process again: no helper" "0:$daemon:1" "$?:$MSG_PID:$(calls)"
msg_process_status --cwd "$work/elsewhere" "$work/home.pid" /usr/bin/sleep
expect "another working directory asks the helper" "7:2" "$?:$(calls)"
msg_process_status --cwd "$work/home" "$work/home.pid" /usr/bin/sleep
msg_process_status --cwd "$work/home" "$work/home.pid" /usr/sbin/not-sleep
expect "another binary asks the helper" "0:4" "$?:$(calls)"
msg_process_status --cwd "$work/home" "$work/home.pid" /usr/bin/sleep
sleep 0.01
printf '%8d\n' "$daemon" >"$work/home.pid"
sleep 0.01
msg_process_status --cwd "$work/home" "$work/home.pid" /usr/bin/sleep
expect "a rewritten pid file asks the helper" "0:5" "$?:$(calls)"
printf '%8d\njunk\n' "$daemon" >"$work/home.pid"
fake_helper msg-probe 'echo "$*" >>"'"$work"'/process-calls"; echo "pid file $3 does not hold a pid" >&2; exit 7'
msg_process_status --cwd "$work/home" "$work/home.pid" /usr/bin/sleep
expect "a pid file with more than the PID is the helper's to judge" "7:6" "$?:$(calls)"
printf '%8d\njunk' "$daemon" >"$work/home.pid"
msg_process_status --cwd "$work/home" "$work/home.pid" /usr/bin/sleep
expect "junk on a last line without a newline is the helper's to judge too" "7:7" "$?:$(calls)"
msg_process_tree --cwd "$work/home" "$work/home.pid" /usr/bin/sleep
expect "a process tree always asks the helper" "7:8" "$?:$(calls)"
spawn sh -c 'cd "$1" && exec sleep 30' sh "$work/home"
second=$SPAWNED
fake_helper msg-probe 'echo "$*" >>"'"$work"'/process-calls"; echo '"$second"
printf '%8d\n' "$second" >"$work/home.pid"
sleep 0.2
msg_process_status --cwd "$work/home" "$work/home.pid" /usr/bin/sleep
msg_process_status --cwd "$work/home" "$work/home.pid" /usr/bin/sleep
expect "a new daemon is asked about once" "0:$second:9" "$?:$MSG_PID:$(calls)"
printf '%d' "$second" >"$work/home.pid"
sleep 0.01
msg_process_status --cwd "$work/home" "$work/home.pid" /usr/bin/sleep
msg_process_status --cwd "$work/home" "$work/home.pid" /usr/bin/sleep
expect "a pid file without a final newline is known too" "0:$second:10" "$?:$MSG_PID:$(calls)"
kill -s KILL "$second"
# the killed daemon stays a zombie until the wait below
sleep 0.2
fake_helper msg-probe 'echo "$*" >>"'"$work"'/process-calls"; echo "pid file $3 names PID '"$second"', which has exited (zombie)" >&2; exit 7'
msg_process_status --cwd "$work/home" "$work/home.pid" /usr/bin/sleep
expect "a zombie is the helper's to judge, not the kept identity's" "7:11" "$?:$(calls)"
wait "$second" 2>/dev/null
# A known daemon's process tree comes from /proc/PID/task/*/children.
spawn sh -c 'cd "$1" && { sleep 30 & sleep 30 & wait; }' sh "$work/home"
parent=$SPAWNED
sleep 0.2
printf '%8d\n' "$parent" >"$work/home.pid"
sleep 0.01
fake_helper msg-probe 'echo "$*" >>"'"$work"'/process-calls"; echo '"$parent"
shell=$(readlink -f /bin/sh)
msg_process_status --cwd "$work/home" "$work/home.pid" "$shell"
msg_process_tree --cwd "$work/home" "$work/home.pid" "$shell"
rc=$?
kids=$(cat /proc/"$parent"/task/*/children)
expect "a known daemon's tree needs no helper" "0:$parent:$parent $(echo $kids):12" "$rc:$MSG_PID:$MSG_PIDS:$(calls)"
kill -s KILL "$parent" $kids
wait "$parent" 2>/dev/null

pids=$(msg_pids_by_cwd "$work/home" "$(dirname "$(readlink -f /bin/sleep)")")
expect "msg_pids_by_cwd finds a process by working directory and binary" "$daemon" "$pids"
pids=$(msg_pids_by_cwd "$work/home" /nonexistent/dir)
expect "msg_pids_by_cwd requires the binary directory too" "" "$pids"

###########################################################################
# stop escalation

spawn sleep 30
victim=$SPAWNED
msg_stop_escalate 4000 "$victim"
expect "TERM stops a plain process" 0 $?
wait "$victim" 2>/dev/null

spawn sleep 30
frozen=$SPAWNED
kill -s STOP "$frozen"
msg_clock
t0=$MSG_NOW_MS
msg_stop_escalate 4000 "$frozen"
rc=$?
msg_clock
expect "a frozen process is stopped" 0 $rc
if [ $((MSG_NOW_MS - t0)) -lt 1500 ]; then
	ok "a frozen process is stopped at once, not after the KILL wait ($((MSG_NOW_MS - t0)) ms)"
else
	not_ok "a frozen process is stopped at once" "$((MSG_NOW_MS - t0)) ms"
fi

spawn sh -c 'trap "" TERM; while :; do sleep 0.1; done'
stubborn=$SPAWNED
sleep 0.2
msg_clock
t0=$MSG_NOW_MS
msg_stop_escalate 2000 "$stubborn"
rc=$?
msg_clock
expect "a process ignoring TERM gets KILL" 0 $rc
if [ $((MSG_NOW_MS - t0)) -lt 2500 ]; then
	ok "escalation stays inside its budget ($((MSG_NOW_MS - t0)) ms of 2000)"
else
	not_ok "escalation stays inside its budget" "$((MSG_NOW_MS - t0)) ms"
fi

# A PID whose start time differs is someone else now: never signalled.
spawn sleep 30
innocent=$SPAWNED
msg_stop_escalate 1000 "$innocent:1"
expect "a recycled PID (other start time) counts as gone" 0 $?
if msg_proc_stat "$innocent"; then
	ok "a recycled PID is never signalled"
else
	not_ok "a recycled PID is never signalled" "PID $innocent was killed"
fi

exec 2>&3
if [ "$failures" -gt 0 ]; then
	echo "$failures check(s) failed; log:" >&2
	cat "$work/log" >&2
	exit 1
fi
echo "all checks passed"
exit 0
