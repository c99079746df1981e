#!/bin/sh
# A long-running job under `ibkr-oauth exec`: it calls an IBKR endpoint with the token exec
# handed it, and takes the new one from the file exec keeps current when exec sends SIGHUP.
#
#   ibkr-oauth exec --on-refresh signal:HUP -- examples/delivery/refresh-on-hup.sh
#
# The token never goes into an argument (where `ps` would show it): curl reads its header from
# stdin, written there by printf, a shell builtin.
set -u
token=$IBKR_ACCESS_TOKEN
trap 'token=$(cat "$IBKR_ACCESS_TOKEN_FILE"); echo "new token (${#token} characters)"' HUP
trap 'echo stopping; exit 0' TERM INT
url="${IBKR_BASE_URL:-https://api.ibkr.com}/gw/api/v1/echo/https"
while :; do
  if printf 'header = "Authorization: Bearer %s"\n' "$token" | curl -fsS -o /dev/null -K - "$url"; then
    echo "echo ok"
  else
    echo "echo failed"
  fi
  sleep 0.2
done
