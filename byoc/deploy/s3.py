"""S3 for deploy: the model archive (given, or uploaded for the user), async inputs and
answers, and removing exactly the objects deploy wrote."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from ..console import Console
from ..errors import ByocError, UsageError
from .aws import Aws, AwsError

CREATED_BY = "byoc"


def parse(url: str, what: str = "--model-data") -> tuple[str, str]:
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise UsageError(f"{what} {url}: not an s3://BUCKET/KEY URL",
                         "for example s3://my-bucket/models/model.tar.gz")
    bucket, key = url[5:].split("/", 1)
    return bucket, key


def size(aws: Aws, url: str, what: str = "--model-data") -> int:
    bucket, key = parse(url, what)
    try:
        return int(aws.call(aws.s3, "head_object", Bucket=bucket, Key=key)["ContentLength"])
    except AwsError as exc:
        if exc.code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
            raise UsageError(f"{what} {url}: no such object", "upload it first, or pass "
                             "--model-tar model.tar.gz and let deploy upload it") from None
        raise


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model_tar(path: Path) -> Path:
    if not path.is_file():
        raise UsageError(f"--model-tar {path}: no such file",
                         "make one with `python build.py package-model FLAVOR --out FILE`")
    if not path.name.endswith(".tar.gz"):
        raise UsageError(f"--model-tar {path}: SageMaker takes a single .tar.gz (C13)",
                         "package it with `python build.py package-model`")
    return path


def default_bucket(aws: Aws) -> str:
    """The SageMaker SDK's default bucket name, so users find their models where the SDK
    would have put them."""
    return f"sagemaker-{aws.region}-{aws.account()}"


def ensure_bucket(aws: Aws, bucket: str, console: Console) -> bool:
    """True when deploy created it."""
    try:
        aws.call(aws.s3, "head_bucket", Bucket=bucket)
        return False
    except AwsError as exc:
        if exc.code not in ("404", "NoSuchBucket", "NotFound"):
            raise
    kwargs = {} if aws.region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": aws.region}}
    aws.call(aws.s3, "create_bucket", Bucket=bucket, **kwargs)
    aws.call(aws.s3, "put_bucket_tagging", Bucket=bucket,
             Tagging={"TagSet": [{"Key": "created-by", "Value": CREATED_BY}]})
    console.ok(f"created bucket s3://{bucket} ({aws.region})")
    return True


def upload_model(aws: Aws, path: Path, bucket: str, endpoint: str,
                 console: Console) -> tuple[str, bool]:
    """Upload under a content-addressed key; (url, True) when this call uploaded it, (url,
    False) when the same archive was already there (then it is not deploy's to remove)."""
    digest = sha256(path)
    key = f"byoc/{endpoint}/{digest[:16]}/model.tar.gz"
    url = f"s3://{bucket}/{key}"
    try:
        head = aws.call(aws.s3, "head_object", Bucket=bucket, Key=key)
        if head.get("Metadata", {}).get("sha256") == digest:
            console.info(f"model archive already in {url}")
            return url, False
    except AwsError as exc:
        if exc.code not in ("404", "NoSuchKey", "NotFound"):
            raise
    total = path.stat().st_size
    console.step(f"upload {path.name} ({total / 1e6:.1f} MB) to {url}")
    sent = [0, time.monotonic()]

    def progress(chunk: int) -> None:  # a line every 5 s on a long upload, not per chunk
        sent[0] += chunk
        if time.monotonic() - sent[1] >= 5:
            sent[1] = time.monotonic()
            console.info(f"  {sent[0] / 1e6:.0f} of {total / 1e6:.0f} MB")

    try:
        aws.s3.upload_file(str(path), bucket, key, Callback=progress, ExtraArgs={
            "Metadata": {"sha256": digest, "created-by": CREATED_BY}})
    except Exception as exc:  # boto3's transfer manager wraps ClientError in its own
        raise ByocError(f"upload of {path} to {url} failed: {exc}",
                        "check the bucket exists in the endpoint's region and the caller may "
                        "s3:PutObject there") from None
    console.ok(f"uploaded {url}")
    return url, True


def put(aws: Aws, url: str, body: bytes) -> None:
    bucket, key = parse(url, "S3 location")
    aws.call(aws.s3, "put_object", Bucket=bucket, Key=key, Body=body,
             Metadata={"created-by": CREATED_BY})


def get_if_there(aws: Aws, url: str) -> bytes | None:
    bucket, key = parse(url, "S3 location")
    try:
        return aws.call(aws.s3, "get_object", Bucket=bucket, Key=key)["Body"].read()
    except AwsError as exc:
        if exc.code in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def delete(aws: Aws, url: str) -> bool:
    bucket, key = parse(url, "S3 location")
    try:
        aws.call(aws.s3, "head_object", Bucket=bucket, Key=key)
    except AwsError as exc:
        if exc.code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
            return False
        raise
    aws.call(aws.s3, "delete_object", Bucket=bucket, Key=key)
    return True


def delete_bucket_if_empty(aws: Aws, bucket: str) -> bool:
    try:
        listed = aws.call(aws.s3, "list_objects_v2", Bucket=bucket, MaxKeys=1)
    except AwsError as exc:
        if exc.code in ("404", "NoSuchBucket"):
            return False
        raise
    if listed.get("KeyCount", 0):
        return False
    aws.call(aws.s3, "delete_bucket", Bucket=bucket)
    return True
