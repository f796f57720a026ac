# Shared lookups and the values every other file derives from.

data "google_project" "this" {
  project_id = var.project_id
}

# The Cloud Storage service agent, which publishes bucket notifications.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

locals {
  labels = merge({ app = "cutq", managed-by = "terraform" }, var.labels)

  bucket_location = coalesce(var.bucket_location, upper(var.region))

  # Pub/Sub's service agent forwards dead letters and signs push OIDC tokens.
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  deploy_workloads = var.image != null
  use_pool         = var.worker_shape == "pool"
  use_service      = var.worker_shape == "service"
  gpu              = var.gpu_enabled

  # GPU on/off is the single switch for the quota-outage fallback. Cloud Run's L4 needs
  # >= 4 vCPU and >= 16 GiB next to the one nvidia.com/gpu (enforced in variables.tf).
  gpu_limits = {
    cpu              = var.gpu_cpu
    memory           = var.gpu_memory
    "nvidia.com/gpu" = "1"
  }
  cpu_limits = {
    cpu    = var.cpu_only_cpu
    memory = var.cpu_only_memory
  }
  resource_limits = local.gpu ? tomap(local.gpu_limits) : tomap(local.cpu_limits)

  allowed_buckets = distinct(concat(
    [google_storage_bucket.inputs.name, google_storage_bucket.results.name],
    var.extra_allowed_buckets,
  ))

  # Only settings the worker knows: it rejects unknown CUTQ_* variables at start-up.
  worker_env_base = {
    CUTQ_MODEL           = var.model
    CUTQ_DEVICE          = local.gpu ? "cuda" : "cpu"
    CUTQ_EVENTS_TOPIC    = google_pubsub_topic.events.id
    CUTQ_OUTPUT          = "gs://${google_storage_bucket.results.name}/${var.output_prefix}"
    CUTQ_ALLOWED_BUCKETS = join(",", local.allowed_buckets)
    CUTQ_MAX_BATCH       = tostring(local.gpu ? var.max_batch : var.cpu_only_max_batch)
    CUTQ_MAX_WAIT_MS     = tostring(var.max_wait_ms)
    CUTQ_RESIZE          = var.resize
    CUTQ_LOG_FORMAT      = var.log_format
    # Cloud Run kills an instance 10 s after SIGTERM: finish or nack within that.
    CUTQ_GRACE_PERIOD_S = "8"
  }
  worker_env_optional = {
    CUTQ_CHECKPOINT        = var.checkpoint_uri
    CUTQ_CHECKPOINT_SHA256 = var.checkpoint_sha256
  }
  worker_env = merge(
    local.worker_env_base,
    { for name, value in local.worker_env_optional : name => value if value != null },
    var.extra_env,
  )

  # Cloud Run's deterministic URL (https://SERVICE-PROJECT_NUMBER.REGION.run.app) is known
  # before the service exists, so the service can be told its own push audience.
  service_name  = "${var.name_prefix}-worker"
  push_audience = "https://${local.service_name}-${data.google_project.this.number}.${var.region}.run.app"
  push_endpoint = "${local.push_audience}${var.push_path}"

  # Push authentication. The service requires run.invoker (granted to the push invoker
  # only), so Cloud Run verifies each push's OIDC token and then replaces its signature with
  # SIGNATURE_REMOVED_BY_GOOGLE before the request reaches the container
  # (https://cloud.google.com/run/docs/troubleshooting#signature-removed). `cutq serve`
  # therefore checks the claims (audience, issuer, expiry, invoker account) of such tokens and
  # still verifies the signature of any token that has one (CUTQ_PUSH_AUTH=claims).
  # The request waits for its job exactly as long as Pub/Sub waits for the response.
  service_env_extra = {
    CUTQ_PUSH_AUTH            = "claims"
    CUTQ_PUSH_AUDIENCE        = local.push_audience
    CUTQ_PUSH_SERVICE_ACCOUNT = google_service_account.push_invoker.email
    CUTQ_PUSH_TIMEOUT_S       = tostring(var.push_ack_deadline_seconds)
  }
}
