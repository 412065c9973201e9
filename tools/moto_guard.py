"""Run moto's server on a loopback port for as long as a parent process lives.

Usage: moto_guard.py --parent-pid PID [--port N] [--host 127.0.0.1]

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
