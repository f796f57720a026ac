# Monitoring as code: log-based metrics from the worker's one-line-per-job logs, alert
# policies on what an operator of a queue worker must hear about, and one dashboard.
#
# The worker logs one JSON entry per settled job (worker/joblog.py, CUTQ_LOG_FORMAT=json):
#   jsonPayload.logger     = "cutq.worker.joblog"
#   jsonPayload.status     = completed | duplicate | failed | returned | exhausted (local runs only)
#   jsonPayload.error_code = the failed event's code (null otherwise)
#   jsonPayload.timings_ms = {queue, download, decode, batch_wait, infer, encode, upload, total}
#   jsonPayload.batch_size = the inference batch the job ran in
# tests/infra/test_monitoring.py renders such lines with the real formatter and checks every
# field the metrics below read. The dashboard is in dashboard.tf.
#
# Logging query language: OR binds tighter than AND, so every OR group is parenthesised.

locals {
  monitoring = var.monitoring_enabled

  # The worker's Cloud Run resource in this shape (logs and built-in metrics).
  run_log_resources = local.use_pool ? join(" OR ", [
    "(resource.type=\"cloud_run_worker_pool\" AND resource.labels.worker_pool_name=\"${var.name_prefix}-worker-pool\")",
    "(resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${var.name_prefix}-drain\")",
  ]) : "(resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_name}\")"

  worker_logs = "(${local.run_log_resources}) AND jsonPayload.logger=\"cutq.worker.joblog\" AND jsonPayload.job_id:* AND jsonPayload.status:*"

  # The resource types those logs (and so the log-based metrics' series) are written against.
  # Cloud Monitoring refuses an alert filter without resource.type ("must specify a
  # restriction on \"resource.type\" in the filter": terraform-provider-google#7179,
  # googleapis/nodejs-monitoring#46), and one filter names one type, so every condition and
  # chart on a log-based metric is repeated per type.
  run_resource_types = local.use_pool ? ["cloud_run_worker_pool", "cloud_run_job"] : ["cloud_run_revision"]

  run_metric_resource = local.use_pool ? "resource.type=\"cloud_run_worker_pool\" AND resource.labels.worker_pool_name=\"${var.name_prefix}-worker-pool\"" : "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service_name}\""

  jobs_subscription_id = local.use_pool ? "${var.name_prefix}-jobs-pull" : "${var.name_prefix}-jobs-push"
  subscription_filter  = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${local.jobs_subscription_id}\""
  dead_letter_filter   = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${var.name_prefix}-jobs-dead-letter-inspect\""
  # The bulk lane (README, "Lanes"): its subscription and dead letters.
  bulk_subscription_id     = local.use_pool ? "${var.name_prefix}-jobs-bulk-pull" : "${var.name_prefix}-jobs-bulk-push"
  bulk_subscription_filter = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${local.bulk_subscription_id}\""
  bulk_dead_letter_filter  = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${var.name_prefix}-jobs-bulk-dead-letter-inspect\""

  stages = ["queue", "download", "decode", "batch_wait", "infer", "encode", "upload"]

  metric_prefix = "logging.googleapis.com/user/${var.name_prefix}"
  jobs_metric   = "${local.metric_prefix}_jobs"
}

# --- log-based metrics --------------------------------------------------------------------

resource "google_logging_metric" "jobs" {
  count = local.monitoring ? 1 : 0

  project     = var.project_id
  name        = "${var.name_prefix}_jobs"
  description = "cutq jobs settled, by status (completed, failed, duplicate, returned) and error code."
  filter      = local.worker_logs

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "cutq jobs"

    labels {
      key         = "status"
      value_type  = "STRING"
      description = "completed | duplicate | failed | returned | exhausted"
    }
    labels {
      key         = "error_code"
      value_type  = "STRING"
      description = "Stable error code of a failed job."
    }
  }

  label_extractors = {
    status     = "EXTRACT(jsonPayload.status)"
    error_code = "EXTRACT(jsonPayload.error_code)"
  }
}

resource "google_logging_metric" "job_latency" {
  count = local.monitoring ? 1 : 0

  project         = var.project_id
  name            = "${var.name_prefix}_job_latency"
  description     = "End-to-end worker time per job (timings_ms.total), by status."
  filter          = local.worker_logs
  value_extractor = "EXTRACT(jsonPayload.timings_ms.total)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "ms"
    display_name = "cutq job latency"

    labels {
      key        = "status"
      value_type = "STRING"
    }
  }

  label_extractors = {
    status = "EXTRACT(jsonPayload.status)"
  }

  # 1 ms … ~5.5 min in 40 buckets (×1.4).
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 40
      growth_factor      = 1.4
      scale              = 1
    }
  }
}

resource "google_logging_metric" "stage_latency" {
  for_each = local.monitoring ? toset(local.stages) : toset([])

  project         = var.project_id
  name            = "${var.name_prefix}_stage_${each.value}"
  description     = "Per-job time in the ${each.value} stage (timings_ms.${each.value})."
  filter          = "${local.worker_logs} AND jsonPayload.timings_ms.${each.value}:*"
  value_extractor = "EXTRACT(jsonPayload.timings_ms.${each.value})"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "ms"
    display_name = "cutq ${each.value} time"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 40
      growth_factor      = 1.4
      scale              = 1
    }
  }
}

resource "google_logging_metric" "batch_size" {
  count = local.monitoring ? 1 : 0

  project         = var.project_id
  name            = "${var.name_prefix}_batch_size"
  description     = "Inference batch size each job ran in."
  filter          = "${local.worker_logs} AND jsonPayload.batch_size>0"
  value_extractor = "EXTRACT(jsonPayload.batch_size)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "cutq batch size"
  }

  bucket_options {
    linear_buckets {
      num_finite_buckets = 64
      width              = 1
      offset             = 0.5
    }
  }
}

# Non-zero container exits: start-up failures (model, checkpoint, warm-up) and crashes.
# Cloud Run writes "Container called exit(N)." to the resource's system log.
resource "google_logging_metric" "worker_exits" {
  count = local.monitoring ? 1 : 0

  project     = var.project_id
  name        = "${var.name_prefix}_worker_exits"
  description = "Worker containers that exited non-zero (failed start-up or crash)."
  filter      = "(${local.run_log_resources}) AND logName:\"run.googleapis.com%2Fvarlog%2Fsystem\" AND textPayload=~\"Container called exit\\([1-9][0-9]*\\)\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "cutq worker non-zero exits"
  }
}

# --- alert policies -----------------------------------------------------------------------

resource "google_monitoring_alert_policy" "dead_letters" {
  count = local.monitoring ? 1 : 0

  project               = var.project_id
  display_name          = "cutq ${var.name_prefix}: jobs in the dead-letter topic"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "dead-letter subscription holds more than ${var.alert_dead_letter_threshold} jobs"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND ${local.dead_letter_filter}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_dead_letter_threshold
      duration        = "0s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  conditions {
    display_name = "bulk dead-letter subscription holds more than ${var.alert_dead_letter_threshold} jobs"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND ${local.bulk_dead_letter_filter}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_dead_letter_threshold
      duration        = "0s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Jobs failed transiently ${var.max_delivery_attempts} times (bulk jobs: ${var.bulk_max_delivery_attempts}) and were dead-lettered. Inspect them with `gcloud pubsub subscriptions pull ${var.name_prefix}-jobs-dead-letter-inspect --limit 10` (bulk lane: `${var.name_prefix}-jobs-bulk-dead-letter-inspect`) and the worker logs; replay by publishing them to their lane's jobs topic again (infra/README.md, Operations)."
  }

  alert_strategy {
    auto_close = "86400s"
  }
}

resource "google_monitoring_alert_policy" "oldest_job" {
  count = local.monitoring ? 1 : 0

  project               = var.project_id
  display_name          = "cutq ${var.name_prefix}: oldest waiting interactive job is too old"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "oldest unacked interactive job older than ${var.alert_oldest_job_seconds} s"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND ${local.subscription_filter}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_oldest_job_seconds
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Interactive jobs (the jobs topic; README, \"Lanes\") wait longer than expected: no worker is pulling (autoscaler not deployed or stuck, GPU quota exhausted, instances failing start-up) or the backlog exceeds max_instances. Check the dashboard's instance count and the worker-exit alert."
  }

  alert_strategy {
    auto_close = "3600s"
  }
}

resource "google_monitoring_alert_policy" "failure_ratio" {
  count = local.monitoring ? 1 : 0

  project               = var.project_id
  display_name          = "cutq ${var.name_prefix}: failure ratio above ${var.alert_failure_ratio}"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  dynamic "conditions" {
    for_each = local.run_resource_types
    content {
      display_name = "${conditions.value}: failed / settled jobs over 10 min > ${var.alert_failure_ratio}"
      condition_threshold {
        filter          = "metric.type=\"${local.jobs_metric}\" AND resource.type=\"${conditions.value}\" AND metric.labels.status=\"failed\""
        comparison      = "COMPARISON_GT"
        threshold_value = var.alert_failure_ratio
        duration        = "0s"
        aggregations {
          alignment_period     = "600s"
          per_series_aligner   = "ALIGN_DELTA"
          cross_series_reducer = "REDUCE_SUM"
        }
        denominator_filter = "metric.type=\"${local.jobs_metric}\" AND resource.type=\"${conditions.value}\" AND NOT metric.labels.status=\"returned\""
        denominator_aggregations {
          alignment_period     = "600s"
          per_series_aligner   = "ALIGN_DELTA"
          cross_series_reducer = "REDUCE_SUM"
        }
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Many jobs end in a failed event. The jobs metric's error_code label says why (invalid_job, input_not_found, not_an_image, too_many_pixels, …): usually bad input from one client, sometimes missing bucket permissions."
  }

  alert_strategy {
    auto_close = "3600s"
  }

  depends_on = [google_logging_metric.jobs]
}

resource "google_monitoring_alert_policy" "worker_restarts" {
  count = local.monitoring ? 1 : 0

  project               = var.project_id
  display_name          = "cutq ${var.name_prefix}: worker restarting repeatedly"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  dynamic "conditions" {
    for_each = local.run_resource_types
    content {
      display_name = "${conditions.value}: more than ${var.alert_worker_exits} non-zero exits in 30 min"
      condition_threshold {
        filter          = "metric.type=\"${local.metric_prefix}_worker_exits\" AND resource.type=\"${conditions.value}\""
        comparison      = "COMPARISON_GT"
        threshold_value = var.alert_worker_exits
        duration        = "0s"
        aggregations {
          alignment_period     = "1800s"
          per_series_aligner   = "ALIGN_DELTA"
          cross_series_reducer = "REDUCE_SUM"
        }
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The worker exits non-zero again and again: start-up fails (checkpoint missing or wrong SHA-256, warm-up check failed, CUDA unavailable) or it crashes. A crash-looping GPU instance is billed while the backlog waits. Read the first error in the worker's logs; scale the pool to 0 until fixed."
  }

  alert_strategy {
    auto_close = "3600s"
  }

  depends_on = [google_logging_metric.worker_exits]
}
