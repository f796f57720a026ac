# The worker on Cloud Run, in the shape var.worker_shape selects, plus the drain job.
# Nothing here exists until var.image is set (the registry must hold the image first).
#
# GPU rules Cloud Run enforces, encoded below: one nvidia.com/gpu limit plus
# node_selector.accelerator, >= 4 vCPU and >= 16 GiB, CPU always allocated (no throttling,
# instance-based billing), and a GPU quota with or without zonal redundancy.

# --- (a) worker pool: `cutq worker` on the pull subscription -------------------------------

resource "google_cloud_run_v2_worker_pool" "worker" {
  count = local.use_pool && local.deploy_workloads ? 1 : 0

  name                = "${var.name_prefix}-worker-pool"
  project             = var.project_id
  location            = var.region
  launch_stage        = var.worker_pool_launch_stage
  deletion_protection = var.deletion_protection
  labels              = local.labels

  # Worker pools have no built-in autoscaling. Start at zero; the external autoscaler
  # (CREMA, see autoscaler.tf) or an operator sets the instance count from the backlog.
  scaling {
    scaling_mode          = "MANUAL"
    manual_instance_count = 0
  }

  template {
    service_account               = google_service_account.worker.email
    gpu_zonal_redundancy_disabled = local.gpu ? var.gpu_zonal_redundancy_disabled : null
    labels                        = local.labels

    dynamic "node_selector" {
      for_each = local.gpu ? [var.gpu_type] : []
      content {
        accelerator = node_selector.value
      }
    }

    containers {
      name  = "worker"
      image = var.image
      args = [
        "worker",
        "--subscription", google_pubsub_subscription.jobs_pull["interactive"].id,
        "--bulk-subscription", google_pubsub_subscription.jobs_pull["bulk"].id,
      ]

      resources {
        limits = local.resource_limits
      }

      dynamic "env" {
        for_each = local.worker_env
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }

  instance_splits {
    type    = "INSTANCE_SPLIT_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  lifecycle {
    # The autoscaler owns the instance count; Terraform must not reset it to 0 on apply.
    # launch_stage is computed by the API (the provider's own example ignores it too), so a
    # value set here would show as a diff on every plan.
    ignore_changes = [scaling[0].manual_instance_count, launch_stage]
  }

  depends_on = [
    google_pubsub_subscription_iam_member.worker_pulls_jobs,
    google_pubsub_subscription_iam_member.worker_pulls_bulk_jobs,
    google_pubsub_topic_iam_member.worker_publishes_events,
    google_storage_bucket_iam_member.worker_reads_inputs,
    google_storage_bucket_iam_member.worker_creates_results,
    google_storage_bucket_iam_member.worker_reads_results,
    google_storage_bucket_iam_member.worker_reads_models,
  ]
}

# --- (b) service: `cutq serve` behind the OIDC push subscription ---------------------------

resource "google_cloud_run_v2_service" "worker" {
  count = local.use_service && local.deploy_workloads ? 1 : 0

  name                = local.service_name
  project             = var.project_id
  location            = var.region
  ingress             = var.service_ingress
  deletion_protection = var.deletion_protection
  labels              = local.labels

  template {
    service_account                  = google_service_account.worker.email
    timeout                          = "${var.push_ack_deadline_seconds}s"
    max_instance_request_concurrency = var.service_concurrency
    gpu_zonal_redundancy_disabled    = local.gpu ? var.gpu_zonal_redundancy_disabled : null
    labels                           = local.labels

    # Request-based scale to zero: no instance (and no GPU bill) while nothing is pushed.
    scaling {
      min_instance_count = 0
      max_instance_count = var.max_instances
    }

    dynamic "node_selector" {
      for_each = local.gpu ? [var.gpu_type] : []
      content {
        accelerator = node_selector.value
      }
    }

    containers {
      name  = "worker"
      image = var.image
      args  = ["serve"]

      ports {
        container_port = 8080
      }

      resources {
        limits = local.resource_limits
        # GPUs require CPU always allocated; batching threads also need it between requests.
        cpu_idle          = false
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = merge(local.worker_env, local.service_env_extra)
        content {
          name  = env.key
          value = env.value
        }
      }

      # Ready only after the model loaded and a warm-up at real shapes verified its output:
      # a broken instance never takes pushes.
      startup_probe {
        initial_delay_seconds = 5
        period_seconds        = 5
        timeout_seconds       = 3
        failure_threshold     = 48
        http_get {
          path = "/readyz"
        }
      }

      liveness_probe {
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
        http_get {
          path = "/healthz"
        }
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  depends_on = [
    google_pubsub_topic_iam_member.worker_publishes_events,
    google_storage_bucket_iam_member.worker_reads_inputs,
    google_storage_bucket_iam_member.worker_creates_results,
    google_storage_bucket_iam_member.worker_reads_results,
    google_storage_bucket_iam_member.worker_reads_models,
  ]
}

# --- drain job: parallel tasks that pull until the backlog is gone -------------------------

resource "google_cloud_run_v2_job" "drain" {
  count = local.use_pool && local.deploy_workloads && var.drain_job_enabled ? 1 : 0

  name                = "${var.name_prefix}-drain"
  project             = var.project_id
  location            = var.region
  deletion_protection = var.deletion_protection
  labels              = local.labels

  template {
    task_count  = var.drain_job_tasks
    parallelism = var.drain_job_tasks
    labels      = local.labels

    template {
      service_account               = google_service_account.worker.email
      timeout                       = "${var.drain_task_timeout_seconds}s"
      max_retries                   = 1
      gpu_zonal_redundancy_disabled = local.gpu ? var.gpu_zonal_redundancy_disabled : null

      dynamic "node_selector" {
        for_each = local.gpu ? [var.gpu_type] : []
        content {
          accelerator = node_selector.value
        }
      }

      containers {
        name  = "worker"
        image = var.image
        args = [
          "worker",
          "--subscription", google_pubsub_subscription.jobs_pull["interactive"].id,
          "--bulk-subscription", google_pubsub_subscription.jobs_pull["bulk"].id,
          "--drain-idle-s", tostring(var.drain_idle_seconds),
        ]

        resources {
          limits = local.resource_limits
        }

        dynamic "env" {
          for_each = local.worker_env
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }

  depends_on = [
    google_pubsub_subscription_iam_member.worker_pulls_jobs,
    google_pubsub_subscription_iam_member.worker_pulls_bulk_jobs,
    google_pubsub_topic_iam_member.worker_publishes_events,
    google_storage_bucket_iam_member.worker_reads_inputs,
    google_storage_bucket_iam_member.worker_creates_results,
    google_storage_bucket_iam_member.worker_reads_results,
    google_storage_bucket_iam_member.worker_reads_models,
  ]
}
