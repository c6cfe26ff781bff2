"""A real S3-protocol server on loopback for tests (moto's server mode), reusable from any test directory
(tests/ is on pytest's pythonpath)::

    from s3_server import fake_aws_env, moto_server, moto_server_process

``moto_server()`` runs in a thread of the test process (fast; no authentication: any credentials pass).
``moto_server_process(auth=True)`` runs in a subprocess with IAM authentication switched on, so wrong
credentials are rejected the way AWS rejects them; it returns the credentials of a user it created.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

from loopback import free_port

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Never read the developer's real config or credentials.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
UNSET_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


def fake_aws_env(monkeypatch) -> None:
    """Fake credentials via the standard env chain, for the duration of one test."""
    for k, v in FAKE_ENV.items():
        monkeypatch.setenv(k, v)
    for k in UNSET_ENV:
        monkeypatch.delenv(k, raising=False)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A threaded moto server on an ephemeral loopback port; yields its endpoint URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access-log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass(frozen=True)
class AuthServer:
    endpoint: str
    access_key_id: str  # a user without any policy: authenticates, but is denied everything
    secret_access_key: str


_AUTH_BOOTSTRAP = """
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="tester")
if len(sys.argv) > 2:  # an identity policy for the user (the third unauthenticated action)
    iam.put_user_policy(UserName="tester", PolicyName="test", PolicyDocument=sys.argv[2])
key = iam.create_access_key(UserName="tester")["AccessKey"]
print(json.dumps([key["AccessKeyId"], key["SecretAccessKey"]]))
"""


@contextlib.contextmanager
def moto_server_process(
    auth: bool = True, timeout: float = 30.0, policy: dict | None = None
) -> Iterator[AuthServer]:
    """moto in a subprocess; with ``auth`` every request after the first two (which create an IAM user
    and its key) must be signed by a known key, as on AWS. ``policy``: an IAM policy document the user
    gets (without one it is denied everything)."""
    port = free_port()
    env = {**os.environ, **FAKE_ENV}
    if auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "2" if policy is None else "3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {endpoint}") from None
                time.sleep(0.1)
        key_id, secret = "unused", "unused"
        if auth:
            out = subprocess.run(
                [sys.executable, "-c", _AUTH_BOOTSTRAP, endpoint, *([json.dumps(policy)] if policy else [])],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            key_id, secret = json.loads(out.stdout)
        yield AuthServer(endpoint, key_id, secret)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
