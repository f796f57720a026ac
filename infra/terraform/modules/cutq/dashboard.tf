# The Cloud Monitoring dashboard of one cutq deployment (metrics: monitoring.tf). Every
# filter names its resource.type; charts of log-based metrics carry one series per type
# (local.run_resource_types).

locals {
  # One line chart: a title and one or more time-series filters with their aggregation.
  dashboard_charts = [
    {
      # One series per lane (README, "Lanes"): interactive, then bulk.
      title = "Backlog: undelivered jobs (interactive, bulk)"
      series = [
        {
          filter = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND ${local.subscription_filter}"
          agg    = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
        },
        {
          filter = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND ${local.bulk_subscription_filter}"
          agg    = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
        },
      ]
    },
    {
      title = "Oldest waiting job (s; interactive, bulk)"
      series = [
        {
          filter = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND ${local.subscription_filter}"
          agg    = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
        },
        {
          filter = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND ${local.bulk_subscription_filter}"
          agg    = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
        },
      ]
    },
    {
      title = "Throughput: jobs/s by status (incl. duplicates)"
      series = [for type in local.run_resource_types : {
        filter = "metric.type=\"${local.jobs_metric}\" AND resource.type=\"${type}\""
        agg    = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_RATE", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.status"] }
      }]
    },
    {
      title = "Failures by error code (per min)"
      series = [for type in local.run_resource_types : {
        filter = "metric.type=\"${local.jobs_metric}\" AND resource.type=\"${type}\" AND metric.labels.status=\"failed\""
        agg    = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_DELTA", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.error_code"] }
      }]
    },
    {
      title = "Job latency p50 / p95 / p99 (ms)"
      series = flatten([for p in ["50", "95", "99"] : [for type in local.run_resource_types : {
        filter = "metric.type=\"${local.metric_prefix}_job_latency\" AND resource.type=\"${type}\" AND metric.labels.status=\"completed\""
        agg    = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_DELTA", crossSeriesReducer = "REDUCE_PERCENTILE_${p}" }
      }]])
    },
    {
      title = "Stage latency p95 (ms)"
      series = flatten([for stage in local.stages : [for type in local.run_resource_types : {
        filter = "metric.type=\"${local.metric_prefix}_stage_${stage}\" AND resource.type=\"${type}\""
        agg    = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_DELTA", crossSeriesReducer = "REDUCE_PERCENTILE_95" }
      }]])
    },
    {
      title = "Batch size p50 / p95"
      series = flatten([for p in ["50", "95"] : [for type in local.run_resource_types : {
        filter = "metric.type=\"${local.metric_prefix}_batch_size\" AND resource.type=\"${type}\""
        agg    = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_DELTA", crossSeriesReducer = "REDUCE_PERCENTILE_${p}" }
      }]])
    },
    {
      title = "GPU utilisation / GPU memory utilisation (median across instances)"
      series = [for metric in ["gpu/utilizations", "gpu/memory_utilizations"] : {
        filter = "metric.type=\"run.googleapis.com/container/${metric}\" AND ${local.run_metric_resource}"
        agg    = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_DELTA", crossSeriesReducer = "REDUCE_PERCENTILE_50" }
      }]
    },
    {
      title = "Worker instances"
      series = [{
        filter = "metric.type=\"run.googleapis.com/container/instance_count\" AND ${local.run_metric_resource}"
        agg    = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.state"] }
      }]
    },
    {
      title = "Dead-lettered jobs / worker non-zero exits"
      series = concat(
        [{
          filter = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND ${local.dead_letter_filter}"
          agg    = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
        }],
        [for type in local.run_resource_types : {
          filter = "metric.type=\"${local.metric_prefix}_worker_exits\" AND resource.type=\"${type}\""
          agg    = { alignmentPeriod = "300s", perSeriesAligner = "ALIGN_DELTA", crossSeriesReducer = "REDUCE_SUM" }
        }],
      )
    },
  ]

  dashboard = {
    displayName = "cutq ${var.name_prefix}"
    mosaicLayout = {
      columns = 48
      tiles = [for index, chart in local.dashboard_charts : {
        xPos   = (index % 2) * 24
        yPos   = floor(index / 2) * 16
        width  = 24
        height = 16
        widget = {
          title = chart.title
          xyChart = {
            dataSets = [for series in chart.series : {
              plotType = "LINE"
              timeSeriesQuery = {
                timeSeriesFilter = {
                  filter      = series.filter
                  aggregation = series.agg
                }
              }
            }]
          }
        }
      }]
    }
  }
}

resource "google_monitoring_dashboard" "cutq" {
  count = local.monitoring ? 1 : 0

  project        = var.project_id
  dashboard_json = jsonencode(local.dashboard)

  depends_on = [google_logging_metric.jobs, google_logging_metric.job_latency]
}
