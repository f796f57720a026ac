# A complete cutq deployment in one project: APIs, then the module.

locals {
  apis = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "parametermanager.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each = toset(local.apis)

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

module "cutq" {
  source = "../../modules/cutq"

  project_id           = var.project_id
  region               = var.region
  image                = var.image
  worker_shape         = var.worker_shape
  gpu_enabled          = var.gpu_enabled
  model                = var.model
  checkpoint_uri       = var.checkpoint_uri
  checkpoint_sha256    = var.checkpoint_sha256
  checkpoint_in_image  = var.checkpoint_in_image
  max_instances        = var.max_instances
  bucket_force_destroy = var.bucket_force_destroy

  notification_channels = var.notification_channels

  depends_on = [google_project_service.apis]
}
