# Backlog-based scaling of the worker pool (pool shape).
#
# Worker pools have no request-based autoscaling. Google's Cloud Run External Metrics
# Autoscaler (CREMA) runs KEDA scalers as a small Cloud Run service and sets the pool's manual
# instance count, including 0. Its trigger here is KEDA's `prometheus` scaler reading the
# subscription's num_undelivered_messages through Cloud Monitoring's PromQL API: KEDA
# deprecated its MQL-based `gcp-pubsub` scaler and names this as the replacement (KEDA blog,
# 2025-09-15, "Google Cloud deprecations"); CREMA 1.2 builds on KEDA 2.20 and lists the
# Prometheus scaler as verified.
#
# How the count follows the backlog (CREMA 1.2's Java scaler): TargetAverageValueScaling
# recommends ceil(backlog / threshold); ScalingStabilizer turns any positive recommendation
# at 0 instances into 1, then applies the behaviour below; the result is clamped to
# [minReplicaCount, maxReplicaCount]. That rounding up is what wakes the pool: with a
# threshold of 50, 1 waiting job asks for 1 instance, 50 for 1, 51 for 2. An activation
# value would not: CREMA computes KEDA's "active" flag but never reads it (IsActive has no
# caller outside state_provider.go), so none is rendered.
#
# Terraform creates CREMA's identity with exactly the permissions it needs and renders its
# configuration (output `autoscaler_config_yaml`). CREMA itself (a prebuilt image, with its
# config in Parameter Manager) is deployed with the gcloud commands in infra/README.md.
#
# Both lanes' backlogs drive one trigger: the query adds the interactive backlog and the bulk
# backlog scaled by autoscaler_backlog_per_instance / autoscaler_bulk_backlog_per_instance,
# so the count is ceil(interactive / that + bulk / this): each lane asks for its share of
# instances, and any waiting job of either lane wakes a pool at 0. One trigger, not one per
# lane: a single Prometheus query is the path CREMA lists as verified. Each lane's term is
# `or vector(0)`: a lane with no recent sample must count as empty, not empty the sum (which
# ignoreNullValues would read as no backlog at all while the other lane waits).

locals {
  autoscaler = local.use_pool && var.autoscaler_enabled

  # pubsub.googleapis.com/subscription/num_undelivered_messages in PromQL's naming (Cloud
  # Monitoring, "Mapping Cloud Monitoring metrics to PromQL": first / to :, other . and / to _).
  autoscaler_backlog_series      = "pubsub_googleapis_com:subscription_num_undelivered_messages{monitored_resource=\"pubsub_subscription\",project_id=\"${var.project_id}\",subscription_id=\"${var.name_prefix}-jobs-pull\"}"
  autoscaler_bulk_backlog_series = "pubsub_googleapis_com:subscription_num_undelivered_messages{monitored_resource=\"pubsub_subscription\",project_id=\"${var.project_id}\",subscription_id=\"${var.name_prefix}-jobs-bulk-pull\"}"
  # Interactive jobs plus bulk jobs in interactive-job units (see above).
  autoscaler_backlog_query = "(sum(${local.autoscaler_backlog_series}) or vector(0)) + (sum(${local.autoscaler_bulk_backlog_series}) or vector(0)) * ${var.autoscaler_backlog_per_instance} / ${var.autoscaler_bulk_backlog_per_instance}"

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
            type = "prometheus"
            name = "jobs-backlog"
            metadata = {
              serverAddress = "https://monitoring.googleapis.com/v1/projects/${var.project_id}/location/global/prometheus"
              # One series (sums): the scaler refuses a query that returns several.
              query     = local.autoscaler_backlog_query
              threshold = tostring(var.autoscaler_backlog_per_instance)
              # An idle subscription can have no recent backlog sample: an empty answer reads
              # as an empty backlog (KEDA's default, spelt out) instead of an error that
              # leaves the count where it was.
              ignoreNullValues = "true"
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

# The backlog is read from Cloud Monitoring (PromQL API: monitoring.timeSeries.list); metric
# reads can only be granted on the project.
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
