"""Run moto's server on a loopback port for as long as a parent process lives.

Usage: moto_guard.py --parent-pid PID [--port N] [--host 127.0.0.1]

Environment: LAPSE_MOTO_TRUST_SIGNATURES=1 (see below); LAPSE_MOTO_SWITCH_INTERVAL=S
sets Python's thread switch interval, so tests can make the server's request threads
interleave far more often than the default 5 ms and expose check-then-write races.

Prints `LAPSE_MOTO_PORT=<port>` on stdout once the server answers, then serves until
the parent process is gone (checked twice a second) or it receives SIGTERM/SIGINT.
The guard is what makes "always stops the server" hold even when a test binary or
script dies without cleaning up.
"""

import argparse
import logging
import os
import signal
import sys
import threading
import time
import urllib.request

# AWS-managed policies (arn:aws:iam::aws:policy/...) exist in real accounts; Lapse's
# role catalog attaches and detaches them, so the emulator must know them too.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

from moto.server import ThreadedMotoServer  # noqa: E402

# The deploy rehearsal turns on moto's IAM enforcement. moto then re-derives each
# request's SigV4 signature from the form fields it parsed, and for some
# form-encoded (query protocol: SNS, IAM, STS) bodies its re-encoding differs from
# the Rust SDK's, so valid requests are refused as forged. With this set, the
# caller is still identified by its access key (an unknown key is refused) and
# authorized against its policies; only the recomputed signature is not compared.
if os.environ.get("LAPSE_MOTO_TRUST_SIGNATURES") == "1":
    from moto.iam.access_control import IAMRequestBase  # noqa: E402

    IAMRequestBase.check_signature = lambda self: None

# DynamoDB applies a conditional write atomically: of two writers that read version 1
# and both write "version = 1 -> 2", exactly one succeeds. moto's server runs each
# request on its own thread and checks the condition, then writes, with nothing in
# between to stop a second request from passing the same check; CI saw both of two
# racing approvals land. Lapse's exactly-once guarantees (one approval, one audit
# sequence slot, one revocation claim) rest on that atomicity, so every DynamoDB
# request is applied under one lock here. A single lock is stricter than DynamoDB's
# per-item isolation, never weaker.
from moto.dynamodb.responses import DynamoHandler  # noqa: E402

_DYNAMODB_LOCK = threading.RLock()
_dynamodb_call_action = DynamoHandler.call_action


def _dynamodb_call_action_atomically(self):  # type: ignore[no-untyped-def]
    with _DYNAMODB_LOCK:
        return _dynamodb_call_action(self)


DynamoHandler.call_action = _dynamodb_call_action_atomically


def parent_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if interval := os.environ.get("LAPSE_MOTO_SWITCH_INTERVAL"):
        sys.setswitchinterval(float(interval))
    # One line per request on stderr drowns test output; keep warnings and errors.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()

    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/moto-api/", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            print("moto server did not become ready", file=sys.stderr)
            return 1
        time.sleep(0.1)

    print(f"LAPSE_MOTO_PORT={port}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set() and parent_alive(args.parent_pid):
        stop.wait(0.5)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
