"""Artifacts as objects in an S3 (or S3-compatible) bucket, through boto3."""

from __future__ import annotations

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from registry.storage.base import ArtifactStoreError, check_key, folder_prefix, split_bucket_uri

S3_PAGE_SIZE = 1000  # the most S3 returns per list call and accepts per delete call

_S3_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class S3ArtifactStore:
    """Artifacts as objects under s3://bucket/prefix, through boto3 (credentials and region from AWS_* or profiles)."""

    def __init__(self, uri: str, *, endpoint_url: str | None = None, page_size: int = S3_PAGE_SIZE) -> None:
        self.bucket, self.prefix = split_bucket_uri(uri, "s3")
        self.uri = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self._root = f"{self.prefix}/" if self.prefix else ""
        self._page_size = min(page_size, S3_PAGE_SIZE)
        config = Config(
            connect_timeout=10,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            # Self-hosted S3-compatible servers rarely have wildcard DNS for bucket.host names.
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        try:
            self._client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
        except (BotoCoreError, ValueError) as exc:
            raise ArtifactStoreError(f"cannot open {self.uri}: {exc}") from exc

    def put_bytes(self, key: str, data: bytes) -> str:
        """Upload one object (replacing any) and return its s3:// URI."""
        uri = self.uri_for(key)
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._root + key, Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactStoreError(f"cannot write {uri}: {_s3_reason(exc, self.bucket)}") from exc
        return uri

    def get_bytes(self, key: str) -> bytes:
        """Download one object; a missing one raises ArtifactStoreError saying "not found"."""
        uri = self.uri_for(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._root + key)
            data: bytes = response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactStoreError(f"cannot read {uri}: {_s3_reason(exc, self.bucket)}") from exc
        return data

    def exists(self, key: str) -> bool:
        """Whether an object is stored under this key."""
        uri = self.uri_for(key)
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._root + key)
        except ClientError as exc:
            if _s3_code(exc) in _S3_NOT_FOUND_CODES:
                return False
            raise ArtifactStoreError(f"cannot check {uri}: {_s3_reason(exc, self.bucket)}") from exc
        except BotoCoreError as exc:
            raise ArtifactStoreError(f"cannot check {uri}: {exc}") from exc
        return True

    def list_keys(self, prefix: str) -> list[str]:
        """Keys of the objects under the folder `prefix`, relative to the root and sorted."""
        return sorted(name.removeprefix(self._root) for name in self._object_names(prefix))

    def delete_prefix(self, prefix: str) -> int:
        """Delete the objects under the folder `prefix`, in batches; return how many were deleted."""
        names = self._object_names(prefix)
        deleted = 0
        for start in range(0, len(names), self._page_size):
            batch = names[start : start + self._page_size]
            try:
                response = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True}
                )
            except (ClientError, BotoCoreError) as exc:
                raise ArtifactStoreError(f"cannot delete under {self.uri}: {_s3_reason(exc, self.bucket)}") from exc
            errors = response.get("Errors", [])
            deleted += len(batch) - len(errors)
            if errors:
                first = errors[0]
                raise ArtifactStoreError(
                    f"cannot delete s3://{self.bucket}/{first.get('Key')}: {first.get('Code')}: "
                    f"{first.get('Message')} ({len(errors)} objects refused, {deleted} deleted)"
                )
        return deleted

    def uri_for(self, key: str) -> str:
        """The s3:// URI of the object stored under this key."""
        check_key(key, self.uri)
        return f"{self.uri}/{key}"

    def _object_names(self, prefix: str) -> list[str]:
        full_prefix = self._root + folder_prefix(prefix, self.uri)
        names: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full_prefix, PaginationConfig={"PageSize": self._page_size}
            )
            for page in pages:
                names.extend(item["Key"] for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactStoreError(
                f"cannot list s3://{self.bucket}/{full_prefix}: {_s3_reason(exc, self.bucket)}"
            ) from exc
        return names


def _s3_code(exc: ClientError) -> str:
    code: str = exc.response.get("Error", {}).get("Code", "")
    return code


def _s3_reason(exc: ClientError | BotoCoreError, bucket: str) -> str:
    if not isinstance(exc, ClientError):
        return str(exc)
    code = _s3_code(exc)
    if code == "NoSuchBucket":
        return f"not found: bucket {bucket!r} does not exist"
    if code in _S3_NOT_FOUND_CODES:
        return "not found"
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"access denied ({code}): check the AWS credentials and the bucket's policy"
    message = exc.response.get("Error", {}).get("Message", "")
    return f"{code}: {message}" if message else code or str(exc)
