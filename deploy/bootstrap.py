"""One-shot set-up of a deployment: the git + DVC workspace, its DVC remote, and the S3 buckets.

Idempotent, so it runs on every start: the `bootstrap` service of docker-compose.yaml, an init container of
the code location on Kubernetes (deploy/helm/values.yaml). Reads the same variables as the code:

  GAN_WORKSPACE            the workspace folder (a volume); created as a git + DVC repo when it is not one
  GAN_STORE_URI            where models are published; an s3:// bucket is created when missing
  GAN_DVC_REMOTE           optional s3:// URL for `dvc push` of the data; set as the default DVC remote
  GAN_STORE_ENDPOINT_URL   an S3-compatible server (SeaweedFS in docker-compose); AWS_ENDPOINT_URL_S3 also works
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION   the standard AWS chain (never logged)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run as a script from any folder

from pipelines.dvc import dvc, init_workspace  # noqa: E402

DVC_REMOTE_NAME = "storage"


def s3_buckets(*uris: str | None) -> list[str]:
    """The distinct buckets named by the s3:// URIs among ``uris`` (others are ignored)."""
    return sorted({urlparse(u).netloc for u in uris if u and u.startswith("s3://") and urlparse(u).netloc})


def ensure_buckets(buckets: list[str], endpoint_url: str | None, wait_s: float = 60.0) -> list[str]:
    """Create the missing buckets; returns those created. Waits for a server that is still starting."""
    import boto3
    from botocore.exceptions import ClientError, EndpointConnectionError

    s3 = boto3.client("s3", endpoint_url=endpoint_url)
    region = s3.meta.region_name
    created = []
    for bucket in buckets:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                s3.head_bucket(Bucket=bucket)
                break
            except EndpointConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)  # the object store container is still starting
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                    raise
                # AWS wants the region spelled out everywhere but us-east-1.
                location = {} if region in (None, "us-east-1") else {"LocationConstraint": region}
                s3.create_bucket(
                    Bucket=bucket, **({"CreateBucketConfiguration": location} if location else {})
                )
                created.append(bucket)
                break
    return created


def ensure_workspace(path: Path) -> bool:
    """Make ``path`` a git + DVC workspace unless it is one; True when it was created now.

    An existing workspace is left alone: its params.yaml may have been edited since.
    """
    if (path / ".dvc").is_dir() and (path / "dvc.yaml").is_file():
        return False
    init_workspace(path, REPO_ROOT)
    return True


def ensure_dvc_remote(workspace: Path, url: str, endpoint_url: str | None) -> None:
    """Point the workspace's default DVC remote at ``url`` (credentials stay in the AWS chain)."""
    dvc(workspace, "remote", "add", "--force", "--default", DVC_REMOTE_NAME, url)
    if endpoint_url:
        dvc(workspace, "remote", "modify", DVC_REMOTE_NAME, "endpointurl", endpoint_url)


def main() -> int:
    env = os.environ
    workspace = Path(env.get("GAN_WORKSPACE", "/workspace"))
    endpoint = env.get("GAN_STORE_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL_S3") or None
    created = ensure_workspace(workspace)
    print(f"bootstrap: workspace {workspace} {'created' if created else 'already set up'}")
    remote = env.get("GAN_DVC_REMOTE")
    if remote:
        ensure_dvc_remote(workspace, remote, endpoint)
        print(f"bootstrap: DVC remote {DVC_REMOTE_NAME} -> {remote}")
    buckets = s3_buckets(env.get("GAN_STORE_URI"), remote)
    if buckets:
        made = ensure_buckets(buckets, endpoint)
        print(f"bootstrap: buckets {', '.join(buckets)} ready ({len(made)} created)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
