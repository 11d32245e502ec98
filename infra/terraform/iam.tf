# The gateway's role: exactly the S3 and KMS actions gateway/ calls, each on the one
# resource it calls it on. tests/infra/test_iam_policy.py derives the calls from the
# code and fails when this policy grants more or less than they need.

data "aws_iam_policy_document" "gateway" {
  # gateway/storage/s3.py: head_bucket (readiness), get_bucket_versioning (before a
  # publish), and for `weightgate gc` the listing of versions and unfinished uploads.
  statement {
    sid = "WeightsBucket"
    actions = [
      "s3:GetBucketVersioning",
      "s3:ListBucket",
      "s3:ListBucketMultipartUploads",
      "s3:ListBucketVersions",
    ]
    resources = [aws_s3_bucket.weights.arn]
  }

  # upload_fileobj (multipart: put, parts, complete, abort on failure), head_object after
  # the upload, head_object / presigned get_object pinned to a VersionId per redirect,
  # and for `weightgate gc` an upload's parts and the deletion of one unreferenced version.
  statement {
    sid = "WeightsObjects"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:DeleteObjectVersion",
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:ListMultipartUploadParts",
      "s3:PutObject",
    ]
    resources = ["${aws_s3_bucket.weights.arn}/*"]
  }

  # gateway/audit/anchors.py: get_object_lock_configuration (start-up check) and
  # list_object_versions (audit verify --anchors).
  statement {
    sid       = "AuditBucket"
    actions   = ["s3:GetBucketObjectLockConfiguration", "s3:ListBucketVersions"]
    resources = [aws_s3_bucket.audit.arn]
  }

  # put_object with ObjectLockMode=COMPLIANCE (which needs PutObjectRetention too), and
  # get_object of each listed version. No delete, no retention bypass, no legal hold.
  statement {
    sid       = "AuditObjects"
    actions   = ["s3:GetObjectVersion", "s3:PutObject", "s3:PutObjectRetention"]
    resources = ["${aws_s3_bucket.audit.arn}/*"]
  }

  # SSE-KMS: S3 asks KMS on the caller's behalf, with the caller's permissions:
  # a data key for each write, a decrypt for each read and to complete a multipart upload.
  statement {
    sid       = "StorageKeyThroughS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.storage.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }

  # WEIGHTGATE_KEYSTORE=kms:alias/...-kek: wrap and unwrap data keys, read the key's
  # state, and for `weightgate keys retire` disable a key no data key uses.
  statement {
    sid       = "KeyEncryptionKey"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:DisableKey", "kms:Encrypt"]
    resources = [aws_kms_key.kek.arn]
  }
}

resource "aws_iam_policy" "gateway" {
  name        = "${var.name}-gateway"
  description = "weightgate gateway: its S3 buckets and KMS keys, nothing else"
  policy      = data.aws_iam_policy_document.gateway.json
}

# IRSA: only the gateway's Kubernetes service account can assume the role.
data "aws_iam_policy_document" "gateway_trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_host}:sub"
      values   = ["system:serviceaccount:${var.kubernetes_namespace}:${var.kubernetes_service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "gateway" {
  name               = "${var.name}-gateway"
  assume_role_policy = data.aws_iam_policy_document.gateway_trust.json
}

resource "aws_iam_role_policy_attachment" "gateway" {
  role       = aws_iam_role.gateway.name
  policy_arn = aws_iam_policy.gateway.arn
}
