"""The access log, without the secrets some URLs carry.

A file URL's ``cap`` parameter is a capability (whoever has it may download,
while the grant lives), and local storage URLs carry an HMAC ``sig``: neither
may reach a log line that operators, log shippers and SIEMs all read.
"""

from __future__ import annotations

import logging
import re

# Query parameters whose values are credentials, whatever the route.
SECRET_PARAMETERS = ("cap", "sig", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token")
_SECRET = re.compile(
    r"(?P<name>(?:^|[?&])(?:" + "|".join(map(re.escape, SECRET_PARAMETERS)) + r")=)[^&\s]*",
    re.IGNORECASE,
)


def redact(target: str) -> str:
    return _SECRET.sub(r"\g<name>[redacted]", target)


class RedactSecrets(logging.Filter):
    """Rewrites uvicorn's access-log arguments (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install() -> None:
    """Idempotent: each serving process calls it once its logging is configured."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
