#!/bin/sh
# A shell script (a cron job, say) that reads the bare token from a sink file of
# `ibkr-oauth serve --sink PATH` and calls IBKR's echo endpoint with it.
#
#   ibkr-oauth serve --sink "$XDG_RUNTIME_DIR/ibkr-token" &
#   examples/delivery/call-with-sink.sh "$XDG_RUNTIME_DIR/ibkr-token"
#
# Without an agent, the credential command does the same for one run:
#   token=$(ibkr-oauth token --raw)
set -eu
sink=${1:?give the sink file}
token=$(cat "$sink")
# The header goes to curl on stdin, not as an argument that `ps` would show.
printf 'header = "Authorization: Bearer %s"\n' "$token" |
  curl -fsS -K - "${IBKR_BASE_URL:-https://api.ibkr.com}/gw/api/v1/echo/https"
echo
