variable "project_id" {
  description = "Google Cloud project to deploy into (APIs already enabled, e.g. by examples/basic or gcloud services enable)."
  type        = string
}

variable "region" {
  description = "Region with Cloud Run GPUs."
  type        = string
  default     = "us-central1"
}

variable "image" {
  description = "Worker image already pushed to Artifact Registry (<repository>/cutq:<tag>)."
  type        = string
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
