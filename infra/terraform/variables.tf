variable "region" {
  description = "AWS region of the buckets, the keys and the gateway."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Prefix of every resource name; bucket names add the account id to stay globally unique."
  type        = string
  default     = "weightgate"
}

variable "checkpoint_retention_days" {
  description = "Object Lock (compliance) retention of each anchored audit checkpoint; WEIGHTGATE_CHECKPOINT_RETENTION_DAYS must not exceed it."
  type        = number
  default     = 2557
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider, for the gateway's service account role (IRSA)."
  type        = string
}

variable "oidc_provider_host" {
  description = "The same provider's issuer without https://, e.g. oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE."
  type        = string
}

variable "kubernetes_namespace" {
  description = "Namespace of the gateway's service account."
  type        = string
  default     = "weightgate"
}

variable "kubernetes_service_account" {
  description = "Name of the gateway's service account."
  type        = string
  default     = "weightgate"
}
