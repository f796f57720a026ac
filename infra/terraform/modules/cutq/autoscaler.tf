# Backlog-based scaling of the worker pool (pool shape).
#
# Worker pools have no request-based autoscaling. Google's Cloud Run External Metrics
# Autoscaler (CREMA) runs KEDA scalers as a small Cloud Run service: it polls the
# subscription's num_undelivered_messages (KEDA `gcp-pubsub`, mode SubscriptionSize) and
# sets the pool's manual instance count, including 0 when the backlog is empty.
#
# Terraform creates CREMA's identity with exactly the permissions it needs and renders its
# configuration (output `autoscaler_config_yaml`). CREMA itself (a prebuilt image, with its
# config in Parameter Manager) is deployed with the gcloud commands in infra/README.md.

locals {
  autoscaler = local.use_pool && var.autoscaler_enabled

  autoscaler_config = {
    apiVersion = "crema/v1"
    kind       = "CremaConfig"
    spec = {
      pollingInterval = var.autoscaler_polling_interval_seconds
      triggerAuthentications = [{
        metadata = { name = "adc" }
        spec     = { podIdentity = { provider = "gcp" } }
      }]
      scaledObjects = [{
        spec = {
          scaleTargetRef = {
            name = "projects/${var.project_id}/locations/${var.region}/workerpools/${var.name_prefix}-worker-pool"
          }
          minReplicaCount = 0
          maxReplicaCount = var.max_instances
          triggers = [{
            type = "gcp-pubsub"
            name = "jobs-backlog"
            metadata = {
              subscriptionName = "projects/${var.project_id}/subscriptions/${var.name_prefix}-jobs-pull"
              mode             = "SubscriptionSize"
              value            = tostring(var.autoscaler_backlog_per_instance)
              # Any undelivered job wakes the pool from zero.
              activationValue = "0"
              # An idle subscription can have no recent backlog sample: read that as an
              # empty backlog instead of an error that leaves the count where it was.
              valueIfNull = "0"
            }
            authenticationRef = { name = "adc" }
          }]
          advanced = {
            horizontalPodAutoscalerConfig = {
              behavior = {
                # GPU instances cost the same idle or busy: scale up at once, scale
                # down only after the backlog has stayed low for a few minutes.
                scaleUp = {
                  stabilizationWindowSeconds = 0
                  policies                   = [{ type = "Percent", value = 100, periodSeconds = 30 }]
                }
                scaleDown = {
                  stabilizationWindowSeconds = 300
                  policies                   = [{ type = "Pods", value = 1, periodSeconds = 60 }]
                }
              }
            }
          }
        }
      }]
    }
  }
}

resource "google_service_account" "autoscaler" {
  count = local.autoscaler ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-autoscaler"
  display_name = "cutq worker-pool autoscaler (CREMA)"
  description  = "Reads the jobs backlog metric and sets the worker pool's instance count."
}

# Set the pool's instance count: run.developer on this one worker pool only.
resource "google_cloud_run_v2_worker_pool_iam_member" "autoscaler_scales_pool" {
  count = local.autoscaler && local.deploy_workloads ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_worker_pool.worker[0].name
  role     = "roles/run.developer"
  member   = google_service_account.autoscaler[0].member
}

# Updating a pool that runs as the worker account requires actAs on that account.
resource "google_service_account_iam_member" "autoscaler_acts_as_worker" {
  count = local.autoscaler ? 1 : 0

  service_account_id = google_service_account.worker.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.autoscaler[0].member
}

# The KEDA gcp-pubsub scaler reads pubsub.googleapis.com/subscription/num_undelivered_messages
# from Cloud Monitoring; metric reads can only be granted on the project.
resource "google_project_iam_member" "autoscaler_reads_metrics" {
  count = local.autoscaler ? 1 : 0

  project = var.project_id
  role    = "roles/monitoring.viewer"
  member  = google_service_account.autoscaler[0].member
}

# CREMA reads its configuration from Parameter Manager.
resource "google_project_iam_member" "autoscaler_reads_config" {
  count = local.autoscaler ? 1 : 0

  project = var.project_id
  role    = "roles/parametermanager.parameterViewer"
  member  = google_service_account.autoscaler[0].member
}
