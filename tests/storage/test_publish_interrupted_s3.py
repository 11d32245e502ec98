"""Ctrl-C during ``weightgate models publish`` to S3 leaves no object and no unfinished upload.

The real CLI runs in its own process against moto's S3 server (standing in
for AWS, see conftest) and gets a real SIGINT while it is uploading.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.cli.support import start_large_publish
from tests.storage.conftest import REGION, MotoServer, create_bucket

WEIGHTGATE = str(Path(sys.executable).with_name("weightgate"))


def _objects(s3: Any, bucket: str) -> list[str]:
    listed = s3.list_object_versions(Bucket=bucket).get("Versions", [])
    return [str(v["Key"]) for v in listed]


def test_ctrl_c_while_uploading_to_s3_leaves_nothing_in_the_bucket(
    moto: MotoServer, s3: Any, tmp_path: Path
) -> None:
    bucket = create_bucket(s3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEIGHTGATE_", "AWS_"))}
    env.update(
        WEIGHTGATE_HOME=str(tmp_path / "home"),
        WEIGHTGATE_KEYS_DIR=str(tmp_path / "keys"),
        WEIGHTGATE_STORAGE=f"s3://{bucket}/weights",
        WEIGHTGATE_S3_ENDPOINT_URL=moto.url,
        AWS_ACCESS_KEY_ID="weightgate-test",
        AWS_SECRET_ACCESS_KEY="weightgate-test-secret",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    init = subprocess.run([WEIGHTGATE, "keys", "init"], env=env, capture_output=True, check=False)
    assert init.returncode == 0, init.stderr
    process = start_large_publish(env, tmp_path / "model", shard_bytes=6 << 20)
    deadline = time.monotonic() + 60
    while not _objects(s3, bucket):
        assert process.poll() is None and time.monotonic() < deadline, "publish ended first"
        time.sleep(0.01)  # ask the bucket again
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert _objects(s3, bucket) == []
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
