"""boto3 clients as weightgate makes them, whatever the service (S3, KMS).

Credentials and region come from the usual AWS chain (environment, shared
config files, instance or pod roles); the region is us-east-1 when none is
configured. A malformed endpoint or profile is the operator's mistake, named
by the setting that holds it, not a traceback.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from gateway.errors import InvalidInput

DEFAULT_REGION = "us-east-1"


def make_client(
    service: str,
    *,
    endpoint_url: str | None,
    endpoint_setting: str,
    config: Config,
    session: Any = None,
) -> Any:
    """A ``service`` client; ``endpoint_setting`` names the variable ``endpoint_url`` came from."""
    try:
        session = session or boto3.session.Session()
        return session.client(
            service,
            endpoint_url=endpoint_url,
            region_name=session.region_name or DEFAULT_REGION,
            config=config,
        )
    except ValueError as exc:  # botocore's answer to a malformed endpoint URL
        raise InvalidInput(f"{endpoint_setting} {endpoint_url!r}: {exc}") from None
    except BotoCoreError as exc:  # e.g. AWS_PROFILE names a profile that does not exist
        raise InvalidInput(f"AWS configuration for the {service.upper()} client: {exc}") from None
