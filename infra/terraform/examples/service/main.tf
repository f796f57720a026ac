# The push shape: a Cloud Run service running `cutq serve`, fed by an OIDC-authenticated
# push subscription, scaling 0..N on requests. Same buckets, topics and IAM as the pool shape.
#
# From an empty project, as examples/basic: apply once with image = null (APIs, buckets,
# registry, identities), build the image into the registry this created, apply again with
# image set (infra/README.md).

locals {
  apis = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
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

  project_id          = var.project_id
  region              = var.region
  name_prefix         = "cutq"
  image               = var.image
  worker_shape        = "service"
  gpu_enabled         = var.gpu_enabled
  model               = var.model
  checkpoint_uri      = var.checkpoint_uri
  checkpoint_in_image = var.checkpoint_in_image
  max_instances       = 3

  # Concurrent pushes share GPU batches. The push ack deadline is Pub/Sub's HTTP timeout;
  # the module gives the same value to the service's request timeout and CUTQ_PUSH_TIMEOUT_S.
  service_concurrency       = 16
  push_ack_deadline_seconds = 300

  notification_channels = var.notification_channels

  depends_on = [google_project_service.apis]
}
