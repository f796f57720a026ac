variable "project_id" {
  description = "Google Cloud project to deploy into."
  type        = string
}

variable "region" {
  description = "Region with Cloud Run GPUs (e.g. us-central1)."
  type        = string
  default     = "us-central1"
}

variable "image" {
  description = "Worker image (<artifact_registry_repository>/cutq:<tag>); leave null on the first apply, set it after `gcloud builds submit`."
  type        = string
  default     = null
}

variable "worker_shape" {
  description = "\"pool\" (worker pool + pull subscription, backlog autoscaler) or \"service\" (Cloud Run service + OIDC push)."
  type        = string
  default     = "pool"
}

variable "gpu_enabled" {
  description = "false = CPU fallback (no GPU quota needed). This is the one-line switch for a GPU quota outage."
  type        = bool
  default     = true
}

variable "model" {
  description = "u2netp (bundled; the first deployment's smoke test) or inspyrenet (production; needs checkpoint_uri or checkpoint_in_image = true, else plan fails)."
  type        = string
  default     = "u2netp"
}

variable "checkpoint_in_image" {
  description = "The image was built with the InSPyReNet checkpoint baked in (_CHECKPOINT_GCS), so inspyrenet needs no checkpoint_uri."
  type        = bool
  default     = false
}

variable "checkpoint_uri" {
  description = "gs:// URI of the InSPyReNet checkpoint (upload it to the models bucket); null = use the image's baked-in checkpoint."
  type        = string
  default     = null
}

variable "checkpoint_sha256" {
  description = "Expected SHA-256 of the checkpoint (the worker refuses a mismatch); null skips the check."
  type        = string
  default     = null
}

variable "max_instances" {
  description = "Most worker instances at once (bounded by your GPU quota)."
  type        = number
  default     = 3
}

variable "bucket_force_destroy" {
  description = "Allow terraform destroy to delete non-empty buckets (trial projects only)."
  type        = bool
  default     = false
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel IDs (projects/P/notificationChannels/N) that cutq's alerts notify; empty = alerts open incidents in the console only."
  type        = list(string)
  default     = []
}
