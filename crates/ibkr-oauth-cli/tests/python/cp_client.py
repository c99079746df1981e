"""A Client Portal Gateway client, as Python programs (ibind and others) write it, pointed at
`ibkr-oauth serve --gateway --cp-compatible PORT`: only the base URL differs from IBKR's
gateway. Uses `requests` (scripts/ensure-python-requests installs it).

    cp_client.py smoke BASE_URL [CA_FILE]  tickle, auth status, validate, the read endpoints, logout
                                           (https: the server's certificate checked against CA_FILE)
    cp_client.py hammer BASE_URL RATE SECS  offers RATE calls/s for SECS; prints counts by status

Prints one JSON object on stdout; exits non-zero on any unexpected answer.
"""
import json
import sys
import threading
import time

import requests


def smoke(base, ca=None):
    s = requests.Session()
    out = {}
    if ca:
        # Without the gateway's CA the certificate is refused, as for any unknown issuer.
        try:
            requests.post(f"{base}/v1/api/tickle", timeout=10)
            out["unverified_refused"] = False
        except requests.exceptions.SSLError:
            out["unverified_refused"] = True
    # Per call, as `requests.get(url, verify=PATH)`: a Session's `verify` attribute would lose
    # to REQUESTS_CA_BUNDLE in the environment. Without a CA (plain http, or IBKR's own gateway
    # with its self-signed certificate) clients pass False.
    tls = {"verify": ca if ca else False, "timeout": 10}
    r = s.post(f"{base}/v1/api/tickle", **tls)
    assert r.status_code == 200, r.text
    tickle = r.json()
    out["tickle_authenticated"] = tickle["iserver"]["authStatus"]["authenticated"]
    r = s.post(f"{base}/v1/api/iserver/auth/status", **tls)
    assert r.status_code == 200, r.text
    out["status"] = r.json()
    r = s.get(f"{base}/v1/api/sso/validate", **tls)
    assert r.status_code == 200, r.text
    out["validate_user"] = r.json()["USER_NAME"]
    # A stray Authorization from the client is dropped: the gateway's session is used.
    r = s.get(f"{base}/v1/api/portfolio/accounts", headers={"Authorization": "Bearer not-mine"}, **tls)
    assert r.status_code == 200, r.text
    out["portfolio_accounts"] = r.json()
    r = s.get(f"{base}/v1/api/iserver/accounts", **tls)
    assert r.status_code == 200, r.text
    out["iserver_accounts"] = r.json()
    r = s.post(f"{base}/v1/api/logout", **tls)
    assert r.status_code == 200 and r.json() == {"status": True}, r.text
    # The session outlives a client's logout.
    r = s.get(f"{base}/v1/api/iserver/accounts", **tls)
    assert r.status_code == 200, r.text
    out["after_logout"] = r.status_code
    print(json.dumps(out))


def hammer(base, rate, secs):
    counts = {}
    lock = threading.Lock()
    s = requests.Session()

    def one():
        try:
            code = s.get(f"{base}/v1/api/iserver/accounts", timeout=30).status_code
        except requests.RequestException as e:
            code = type(e).__name__
        with lock:
            counts[str(code)] = counts.get(str(code), 0) + 1

    threads = []
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < secs:
        t = threading.Thread(target=one)
        t.start()
        threads.append(t)
        n += 1
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    for t in threads:
        t.join()
    print(json.dumps(counts))


if __name__ == "__main__":
    if sys.argv[1] == "smoke":
        smoke(sys.argv[2].rstrip("/"), sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        hammer(sys.argv[2].rstrip("/"), float(sys.argv[3]), float(sys.argv[4]))
