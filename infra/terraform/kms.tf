# Two keys, two jobs. The KEK wraps every file's data key (WEIGHTGATE_KEYSTORE=kms:alias/...);
# only the gateway calls it, directly. The storage key encrypts the buckets at rest (SSE-KMS);
# the gateway may use it only through S3, so a leaked role cannot decrypt with it elsewhere.

data "aws_iam_policy_document" "key_admin" {
  # Without an administrator statement a key can become unmanageable; the account's
  # IAM policies decide who administers it.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "kek" {
  description             = "${var.name}: key-encryption key for the data keys of published weights"
  key_usage               = "ENCRYPT_DECRYPT"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key_admin.json
}

resource "aws_kms_alias" "kek" {
  name          = "alias/${var.name}-kek"
  target_key_id = aws_kms_key.kek.key_id
}

resource "aws_kms_key" "storage" {
  description             = "${var.name}: SSE-KMS for the weights and audit buckets"
  key_usage               = "ENCRYPT_DECRYPT"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key_admin.json
}

resource "aws_kms_alias" "storage" {
  name          = "alias/${var.name}-storage"
  target_key_id = aws_kms_key.storage.key_id
}
