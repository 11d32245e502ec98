output "gateway_role_arn" {
  description = "Annotate the gateway's service account with it (eks.amazonaws.com/role-arn)."
  value       = aws_iam_role.gateway.arn
}

output "weightgate_storage" {
  description = "WEIGHTGATE_STORAGE"
  value       = "s3://${aws_s3_bucket.weights.bucket}"
}

output "weightgate_checkpoint_anchor" {
  description = "WEIGHTGATE_CHECKPOINT_ANCHOR"
  value       = "s3://${aws_s3_bucket.audit.bucket}"
}

output "weightgate_keystore" {
  description = "WEIGHTGATE_KEYSTORE"
  value       = "kms:${aws_kms_alias.kek.name}"
}
