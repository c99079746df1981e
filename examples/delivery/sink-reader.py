#!/usr/bin/env python3
"""Reads the token from a JSON sink file of `ibkr-oauth serve --sink-json PATH` and calls IBKR's
echo endpoint with it. The standard library only.

    ibkr-oauth serve --sink-json "$XDG_RUNTIME_DIR/ibkr-token.json" &
    python3 examples/delivery/sink-reader.py "$XDG_RUNTIME_DIR/ibkr-token.json"

The agent rewrites the file atomically (a reader never sees half of it) before the token
expires; read it again for each batch of calls rather than keeping the token.
"""
import datetime
import json
import os
import sys
import urllib.request


def current_token(path):
    with open(path) as f:
        handout = json.load(f)
    if handout.get("version") != 1:
        sys.exit(f"{path}: unknown version {handout.get('version')!r}; this reader knows 1")
    expires = datetime.datetime.fromisoformat(handout["expires_at"].replace("Z", "+00:00"))
    if expires <= datetime.datetime.now(datetime.timezone.utc):
        sys.exit(f"{path}: the token expired at {handout['expires_at']}; is the agent running?")
    return handout["access_token"], expires


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.environ["IBKR_TOKEN_JSON_FILE"]
    token, expires = current_token(path)
    base = os.environ.get("IBKR_BASE_URL", "https://api.ibkr.com")
    request = urllib.request.Request(
        base + "/gw/api/v1/echo/https", headers={"Authorization": "Bearer " + token}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        print(f"echo: {response.status}, token valid until {expires.isoformat()}")


if __name__ == "__main__":
    main()
