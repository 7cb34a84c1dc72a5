"""Step stdout/stderr in an S3-compatible object store, with credentials from named variables.

dagster-aws's `S3ComputeLogManager` takes its credentials from boto3's default chain only; the
run config names its own variables (`deployment.object_store.*_env`), so this subclass also
accepts `access_key_id` / `secret_access_key` as `{env: NAME}` in dagster.yaml, and a region
for endpoints (moto, MinIO) that boto3 cannot infer one for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3
from dagster import Field, StringSource
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager


class ObjectStoreComputeLogManager(S3ComputeLogManager):
    def __init__(
        self,
        bucket,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(bucket, **kwargs)
        if access_key_id or kwargs.get("region"):
            self._s3_session = boto3.session.Session(
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                region_name=kwargs.get("region"),
            ).client(
                "s3",
                endpoint_url=kwargs.get("endpoint_url"),
                use_ssl=kwargs.get("use_ssl", True),
            )

    @classmethod
    def config_type(cls):
        return {
            **super().config_type(),
            "access_key_id": Field(StringSource, is_required=False),
            "secret_access_key": Field(StringSource, is_required=False),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value: Mapping[str, Any]):
        return cls(inst_data=inst_data, **config_value)
