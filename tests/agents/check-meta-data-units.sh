#!/bin/sh
# usage: check-meta-data-units.sh AGENT XMLLINT
# Fails when any action timeout or interval in AGENT's meta-data is a bare
# number instead of carrying a unit (s, ms, min, h).
set -u
agent=$1
xmllint=$2

xml=$("$agent" meta-data) || { echo "$agent meta-data failed" >&2; exit 1; }
values=$(printf '%s\n' "$xml" |
	"$xmllint" --xpath '//actions/action/@timeout | //actions/action/@interval' - 2>/dev/null |
	tr ' ' '\n' | sed -n 's/^\(timeout\|interval\)="\(.*\)"$/\1=\2/p')
if [ -z "$values" ]; then
	echo "$agent: meta-data declares no action timeouts" >&2
	exit 1
fi
status=0
for value in $values; do
	case "${value#*=}" in
	*[0-9]s|*[0-9]ms|*[0-9]min|*[0-9]h)
		;;
	*)
		echo "$agent: action $value has no unit" >&2
		status=1
		;;
	esac
done
exit $status
