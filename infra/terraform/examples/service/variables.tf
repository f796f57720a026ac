variable "project_id" {
  description = "Google Cloud project to deploy into (this root enables the APIs it needs)."
  type        = string
}

variable "region" {
  description = "Region with Cloud Run GPUs."
  type        = string
  default     = "us-central1"
}

variable "image" {
  description = "Worker image (<artifact_registry_repository>/cutq:<tag>); leave null on the first apply, which creates that registry, and set it after `gcloud builds submit`."
  type        = string
  default     = null
}

variable "gpu_enabled" {
  description = "false = CPU fallback for a GPU quota outage."
  type        = bool
  default     = true
}

variable "checkpoint_uri" {
  description = "gs:// URI of the InSPyReNet checkpoint; null = the image's baked-in checkpoint."
  type        = string
  default     = null
}

variable "model" {
  description = "u2netp (bundled; smoke test) or inspyrenet (production; needs checkpoint_uri or checkpoint_in_image = true, else plan fails)."
  type        = string
  default     = "u2netp"
}

variable "checkpoint_in_image" {
  description = "The image was built with the InSPyReNet checkpoint baked in (_CHECKPOINT_GCS)."
  type        = bool
  default     = false
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel IDs that cutq's alerts notify; empty = console incidents only."
  type        = list(string)
  default     = []
}
