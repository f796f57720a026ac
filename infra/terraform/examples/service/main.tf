# The push shape: a Cloud Run service running `cutq serve`, fed by an OIDC-authenticated
# push subscription, scaling 0..N on requests. Same buckets, topics and IAM as the pool shape.

module "cutq" {
  source = "../../modules/cutq"

  project_id     = var.project_id
  region         = var.region
  name_prefix    = "cutq"
  image          = var.image
  worker_shape   = "service"
  gpu_enabled    = var.gpu_enabled
  model          = "inspyrenet"
  checkpoint_uri = var.checkpoint_uri
  max_instances  = 3

  # Concurrent pushes share GPU batches; the push ack deadline is the request timeout.
  service_concurrency       = 16
  push_ack_deadline_seconds = 300
}
