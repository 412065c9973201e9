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


# moto runs a Lambda function's code in Docker, which this machine lacks. The guard
# switches moto to its Docker-less Lambda backend (moto's own setting: an invocation
# succeeds and does nothing) and gives that backend the code of one kind of
# function, chosen by its handler: the local database's Secrets Manager rotation
# function, the organisation's side of Lapse's check-in. Secrets Manager invokes it
# for RotateSecret with the four steps every rotation function implements; here it
# runs inside the emulator, so a rotation is finished when RotateSecret returns (on
# AWS it finishes later, which Lapse waits for). Any other function does nothing,
# as moto's default: a rotation it is asked for never finishes.
from moto.core.config import default_user_config  # noqa: E402

default_user_config["lambda"] = {"use_docker": False}

import hashlib  # noqa: E402
import json  # noqa: E402
import secrets as _secrets  # noqa: E402

from moto.awslambda_simple.models import LambdaSimpleBackend  # noqa: E402

LOCAL_DATABASE_ROTATION = "lapse_local.rotate_database"
# The local database: the SHA-256 of the one password it accepts, per secret.
_DATABASE: dict[str, str] = {}
_DATABASE_LOCK = threading.Lock()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _rotate_database(account_id: str, region: str, event: dict) -> None:
    """One step of a rotation: createSecret makes the pending value, setSecret
    makes the database accept it (and no longer the old one), testSecret proves
    the database takes it, finishSecret makes it AWSCURRENT. Each step is safe to
    run again, as Secrets Manager requires."""
    from moto.secretsmanager.models import secretsmanager_backends

    backend = secretsmanager_backends[account_id][region]
    secret = backend.describe_secret(event["SecretId"])
    token, step = event["ClientRequestToken"], event["Step"]
    version = secret.versions.get(token)
    if version is None:
        raise ValueError(f"no version {token} of {secret.name}")
    if step == "createSecret":
        if version.get("secret_string") is None:
            backend.put_secret_value(
                secret.name, _secrets.token_urlsafe(30), None, token, ["AWSPENDING"]
            )
        return
    value = secret.versions[token].get("secret_string")
    if value is None:
        raise ValueError(f"version {token} of {secret.name} has no value")
    with _DATABASE_LOCK:
        if step == "setSecret":
            _DATABASE[secret.name] = _digest(value)
        elif step == "testSecret":
            if _DATABASE.get(secret.name) != _digest(value):
                raise ValueError(f"the database refuses version {token} of {secret.name}")
        elif step == "finishSecret":
            current = next(
                v for v, d in secret.versions.items() if "AWSCURRENT" in d["version_stages"]
            )
            if current != token:
                backend.update_secret_version_stage(secret.name, "AWSCURRENT", current, token)
            # Done: the label may stay on the current version (AWS allows it), but
            # moto then refuses the next rotation as "still in progress".
            if "AWSPENDING" in secret.versions[token]["version_stages"]:
                backend.update_secret_version_stage(secret.name, "AWSPENDING", token, None)
        else:
            raise ValueError(f"unknown rotation step {step}")


_simple_invoke = LambdaSimpleBackend.invoke


def _invoke(self, function_name, qualifier, body, headers, response_headers):  # type: ignore[no-untyped-def]
    function = self.get_function(function_name, qualifier)
    if function.handler != LOCAL_DATABASE_ROTATION:
        return _simple_invoke(self, function_name, qualifier, body, headers, response_headers)
    try:
        _rotate_database(self.account_id, self.region_name, json.loads(body))
        return b"null"
    except Exception as err:  # a function error, as Lambda reports one
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps({"errorMessage": str(err)}).encode()


LambdaSimpleBackend.invoke = _invoke


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
