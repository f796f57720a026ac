# ---------------------------------------------------------------------------
# Where and what
# ---------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project ID everything is created in."
  type        = string
}

variable "region" {
  description = "Region for Cloud Run, Artifact Registry and the buckets. It must offer Cloud Run GPUs (e.g. us-central1, europe-west1, europe-west4, asia-southeast1) when gpu_enabled is true."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix for every resource name (lower case letters, digits and dashes; at most 17 characters: the longest derived service-account ID, <prefix>-push-invoker, must fit in 30)."
  type        = string
  default     = "cutq"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-17 characters of lower case letters, digits and dashes, starting with a letter and not ending with a dash (<prefix>-push-invoker must be a valid 30-character service-account ID)."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}

variable "image" {
  description = "Full container image reference for the worker (e.g. us-central1-docker.pkg.dev/P/cutq/cutq:v1). While null, only the storage, queues, IAM and registry are created, so the image can be built and pushed into the registry this module creates before the Cloud Run resources reference it."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------

variable "bucket_location" {
  description = "Location of the buckets; null means the same single region as Cloud Run (no cross-region egress between worker and storage)."
  type        = string
  default     = null
}

variable "bucket_force_destroy" {
  description = "Whether terraform destroy may delete buckets that still hold objects. Keep false outside throw-away projects."
  type        = bool
  default     = false
}

variable "inputs_retention_days" {
  description = "Input images are deleted this many days after upload (they are only needed until processed)."
  type        = number
  default     = 7

  validation {
    condition     = var.inputs_retention_days >= 1
    error_message = "inputs_retention_days must be at least 1."
  }
}

variable "results_nearline_after_days" {
  description = "Results move to the NEARLINE storage class this many days after they are written; 0 disables the move."
  type        = number
  default     = 30

  validation {
    condition     = var.results_nearline_after_days >= 0
    error_message = "results_nearline_after_days must be 0 (off) or positive."
  }
}

variable "results_retention_days" {
  description = "Results are deleted this many days after they are written; 0 keeps them forever."
  type        = number
  default     = 365

  validation {
    condition     = var.results_retention_days >= 0
    error_message = "results_retention_days must be 0 (keep) or positive."
  }
}

variable "noncurrent_retention_days" {
  description = "Overwritten or deleted versions in the versioned results and models buckets are kept this many days."
  type        = number
  default     = 7
}

variable "output_prefix" {
  description = "Object prefix under the results bucket for the worker's default output (CUTQ_OUTPUT = gs://<results>/<output_prefix>); the worker adds dt=YYYY-MM-DD/ below it."
  type        = string
  default     = "cutouts"
}

variable "notification_object_prefix" {
  description = "Only objects under this prefix in the inputs bucket become jobs through the GCS notification; null means every object."
  type        = string
  default     = null
}

variable "extra_allowed_buckets" {
  description = "Further buckets jobs may read from or write to (added to CUTQ_ALLOWED_BUCKETS). The worker service account is NOT granted access to them here: grant it where those buckets live."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------
# Pub/Sub
# ---------------------------------------------------------------------------

variable "ack_deadline_seconds" {
  description = "Ack deadline of the worker's pull subscription (10-600). The client library extends leases while a job waits, so this bounds redelivery after a crash, not job duration."
  type        = number
  default     = 120

  validation {
    condition     = var.ack_deadline_seconds >= 10 && var.ack_deadline_seconds <= 600
    error_message = "ack_deadline_seconds must be between 10 and 600."
  }
}

variable "push_ack_deadline_seconds" {
  description = "Ack deadline of the push subscription (10-600); for push it is also the HTTP request timeout, so it must cover a cold start plus one batch. The Cloud Run service timeout is set to the same value."
  type        = number
  default     = 300

  validation {
    condition     = var.push_ack_deadline_seconds >= 10 && var.push_ack_deadline_seconds <= 600
    error_message = "push_ack_deadline_seconds must be between 10 and 600."
  }
}

variable "retry_minimum_backoff_seconds" {
  description = "Minimum delay before Pub/Sub redelivers a nacked or expired job (exponential backoff, 0-600)."
  type        = number
  default     = 10

  validation {
    condition     = var.retry_minimum_backoff_seconds >= 0 && var.retry_minimum_backoff_seconds <= 600
    error_message = "retry_minimum_backoff_seconds must be between 0 and 600."
  }
}

variable "retry_maximum_backoff_seconds" {
  description = "Maximum delay between redeliveries (exponential backoff, 0-600)."
  type        = number
  default     = 600

  validation {
    condition     = var.retry_maximum_backoff_seconds >= 0 && var.retry_maximum_backoff_seconds <= 600
    error_message = "retry_maximum_backoff_seconds must be between 0 and 600."
  }
}

variable "bulk_retry_minimum_backoff_seconds" {
  description = "The bulk lane's minimum delay before Pub/Sub redelivers a nacked or expired job (0-600). Longer than the interactive lane's by default: a bulk job that failed can wait, and its retries then compete less with fresh work."
  type        = number
  default     = 60

  validation {
    condition     = var.bulk_retry_minimum_backoff_seconds >= 0 && var.bulk_retry_minimum_backoff_seconds <= 600
    error_message = "bulk_retry_minimum_backoff_seconds must be between 0 and 600."
  }
}

variable "bulk_max_delivery_attempts" {
  description = "Deliveries of one bulk job before Pub/Sub moves it to the bulk lane's dead-letter topic (5-100)."
  type        = number
  default     = 10

  validation {
    condition     = var.bulk_max_delivery_attempts >= 5 && var.bulk_max_delivery_attempts <= 100
    error_message = "bulk_max_delivery_attempts must be between 5 and 100."
  }
}

variable "max_delivery_attempts" {
  description = "Deliveries of one job before Pub/Sub moves it to the dead-letter topic (5-100)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100."
  }
}

variable "message_retention_seconds" {
  description = "How long unacknowledged jobs stay in the jobs subscription, and dead letters in the dead-letter subscription (600-2678400 s; Pub/Sub allows at most 31 days). A job older than this is dropped without an event, so the default is the 31-day maximum: a pool scaled to zero, a broken image or a spent GPU quota must not cost jobs while nobody looks. Jobs are small JSON references (about 1 KB), so even a large backlog stores little."
  type        = number
  default     = 2678400

  validation {
    condition     = var.message_retention_seconds >= 600 && var.message_retention_seconds <= 2678400
    error_message = "message_retention_seconds must be between 600 (10 minutes) and 2678400 (31 days, Pub/Sub's maximum)."
  }
}

variable "enable_exactly_once_delivery" {
  description = "Exactly-once delivery on the pull subscription (not available for push). Results are idempotent anyway; this only reduces duplicate work at some latency cost."
  type        = bool
  default     = false
}

variable "create_events_subscription" {
  description = "Create a pull subscription on the events topic for inspecting completion events (gcloud pubsub subscriptions pull). Real consumers should create their own filtered subscriptions."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# Worker shape and compute
# ---------------------------------------------------------------------------

variable "worker_shape" {
  description = "How the worker runs on Cloud Run: \"pool\" = worker pool running `cutq worker` on a pull subscription (scaled on backlog by an external autoscaler), \"service\" = Cloud Run service running `cutq serve` behind an OIDC-authenticated push subscription (request-based scale to zero)."
  type        = string
  default     = "pool"

  validation {
    condition     = contains(["pool", "service"], var.worker_shape)
    error_message = "worker_shape must be \"pool\" or \"service\"."
  }
}

variable "gpu_enabled" {
  description = "Attach one GPU per instance. Set false to fall back to CPU inference (no GPU quota needed): no GPU limit or node selector, CPU-sized resources and CUTQ_DEVICE=cpu."
  type        = bool
  default     = true
}

variable "gpu_type" {
  description = "Cloud Run GPU accelerator type (node_selector.accelerator). Only nvidia-l4 is accepted: the CPU and memory checks below encode its rules."
  type        = string
  default     = "nvidia-l4"

  validation {
    condition     = contains(["nvidia-l4"], var.gpu_type)
    error_message = "gpu_type must be \"nvidia-l4\" (the GPU whose CPU and memory rules this module checks)."
  }
}

variable "gpu_zonal_redundancy_disabled" {
  description = "Turn GPU zonal redundancy off (cheaper GPU-seconds, best-effort failover, separate quota). Only applied when gpu_enabled."
  type        = bool
  default     = true
}

variable "gpu_cpu" {
  description = "vCPUs per GPU instance (Cloud Run requires at least 4 with an L4; 8 leaves headroom for decode/encode threads)."
  type        = string
  default     = "8"

  validation {
    condition     = contains(["4", "6", "8"], var.gpu_cpu)
    error_message = "gpu_cpu must be \"4\", \"6\" or \"8\" (an L4 needs at least 4)."
  }
}

variable "gpu_memory" {
  description = "Memory per GPU instance, in Gi: an L4 needs at least 16Gi, and Cloud Run allows at most 4 GiB per vCPU (16Gi at 4 vCPU, 24Gi at 6, 32Gi at 8)."
  type        = string
  default     = "32Gi"

  validation {
    condition = (
      can(regex("^[0-9]+Gi$", var.gpu_memory))
      && try(tonumber(trimsuffix(var.gpu_memory, "Gi")) >= 16, false)
      && try(tonumber(trimsuffix(var.gpu_memory, "Gi")) <= 4 * tonumber(var.gpu_cpu), false)
    )
    error_message = "gpu_memory must be <N>Gi with 16 <= N <= 4 x gpu_cpu (an L4 needs 16Gi; Cloud Run allows 4 GiB per vCPU)."
  }
}

variable "cpu_only_cpu" {
  description = "vCPUs per instance when gpu_enabled is false (1, 2, 4, 6 or 8)."
  type        = string
  default     = "8"

  validation {
    condition     = contains(["1", "2", "4", "6", "8"], var.cpu_only_cpu)
    error_message = "cpu_only_cpu must be \"1\", \"2\", \"4\", \"6\" or \"8\"."
  }
}

variable "cpu_only_memory" {
  description = "Memory per instance when gpu_enabled is false, in Gi. Cloud Run's vCPU/memory table: 1 vCPU up to 4Gi, 2 vCPU up to 8Gi, 4 vCPU 2-16Gi, 6 vCPU 4-24Gi, 8 vCPU 4-32Gi."
  type        = string
  default     = "16Gi"

  # Cloud Run refuses any other pair at apply time; the table's rows as plain comparisons:
  # at most 4 GiB per vCPU, at least 2 GiB from 4 vCPU and 4 GiB from 6 vCPU.
  validation {
    condition = (
      can(regex("^[0-9]+Gi$", var.cpu_only_memory))
      && try(tonumber(trimsuffix(var.cpu_only_memory, "Gi")) >= 1, false)
      && try(tonumber(trimsuffix(var.cpu_only_memory, "Gi")) <= 4 * tonumber(var.cpu_only_cpu), false)
      && try(tonumber(var.cpu_only_cpu) < 4 || tonumber(trimsuffix(var.cpu_only_memory, "Gi")) >= 2, false)
      && try(tonumber(var.cpu_only_cpu) < 6 || tonumber(trimsuffix(var.cpu_only_memory, "Gi")) >= 4, false)
    )
    error_message = "cpu_only_memory must be <N>Gi within Cloud Run's range for cpu_only_cpu: 1 vCPU 1-4Gi, 2 vCPU 1-8Gi, 4 vCPU 2-16Gi, 6 vCPU 4-24Gi, 8 vCPU 4-32Gi."
  }
}

variable "cpu_only_max_batch" {
  description = "CUTQ_MAX_BATCH when gpu_enabled is false. On CPUs batching does not pay: batches ran at 0.8-1.0x the images/s of one image at a time (bench/README.md)."
  type        = number
  default     = 1
}

variable "max_instances" {
  description = "Upper bound on worker instances (GPU quota bound): the service's max_instance_count and the autoscaler's maxReplicaCount."
  type        = number
  default     = 3

  validation {
    condition     = var.max_instances >= 1
    error_message = "max_instances must be at least 1."
  }
}

variable "service_concurrency" {
  description = "Concurrent push requests per service instance. Greater than 1 so concurrent pushes share GPU batches; roughly max_batch x 2."
  type        = number
  default     = 16
}

variable "service_ingress" {
  description = "Ingress of the push service. Pub/Sub push from the same project counts as internal traffic, so INTERNAL_ONLY works and keeps the URL off the internet; IAM (run.invoker) is enforced either way."
  type        = string
  default     = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], var.service_ingress)
    error_message = "service_ingress must be one of the INGRESS_TRAFFIC_* values."
  }
}

variable "push_path" {
  description = "Path on the Cloud Run service that receives Pub/Sub pushes."
  type        = string
  default     = "/"
}

variable "worker_pool_launch_stage" {
  description = "launch_stage sent when the worker pool is created; null lets the API decide (GA). Set \"BETA\" only to use a preview feature. The field is computed, so later changes are ignored (lifecycle.ignore_changes)."
  type        = string
  default     = null

  validation {
    condition     = var.worker_pool_launch_stage == null || contains(["ALPHA", "BETA", "GA"], var.worker_pool_launch_stage)
    error_message = "worker_pool_launch_stage must be null, ALPHA, BETA or GA."
  }
}

variable "deletion_protection" {
  description = "Terraform-side deletion protection on the Cloud Run service, worker pool and job."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# Worker settings (become CUTQ_* environment variables)
# ---------------------------------------------------------------------------

variable "model" {
  description = "CUTQ_MODEL: u2netp (bundled, small) or inspyrenet (production; needs checkpoint_uri, or checkpoint_in_image = true for an image built with the checkpoint baked in)."
  type        = string
  default     = "inspyrenet"

  validation {
    condition     = contains(["u2netp", "inspyrenet"], var.model)
    error_message = "model must be u2netp or inspyrenet."
  }

  # Without a checkpoint the worker exits at start-up and never pulls: the backlog stays,
  # so the autoscaler keeps a GPU instance crash-looping (and billed). Refuse that at plan.
  validation {
    condition     = var.image == null || var.model != "inspyrenet" || var.checkpoint_uri != null || var.checkpoint_in_image
    error_message = "model = \"inspyrenet\" needs checkpoint_uri (gs://<models bucket>/...) or checkpoint_in_image = true (an image built with _CHECKPOINT_GCS); otherwise use model = \"u2netp\"."
  }
}

variable "checkpoint_uri" {
  description = "CUTQ_CHECKPOINT: gs:// URI (or absolute path in the image) of the InSPyReNet checkpoint; null uses whatever the image sets (a checkpoint baked in at build time, see checkpoint_in_image). The worker is granted read access to the module's models bucket only."
  type        = string
  default     = null

  validation {
    condition     = var.checkpoint_uri == null || can(regex("^(gs://[a-z0-9._-]+/.+|/.+)$", var.checkpoint_uri))
    error_message = "checkpoint_uri must be gs://<bucket>/<object> or an absolute path inside the image."
  }
}

variable "checkpoint_in_image" {
  description = "The image has the InSPyReNet checkpoint baked in (built with _CHECKPOINT_GCS / INSPYRENET_CHECKPOINT), so model = \"inspyrenet\" needs no checkpoint_uri. Terraform cannot look inside the image: this is your word for it."
  type        = bool
  default     = false
}

variable "checkpoint_sha256" {
  description = "CUTQ_CHECKPOINT_SHA256: expected SHA-256 of the checkpoint; the worker refuses to start on a mismatch. null skips the check (or uses the image's value)."
  type        = string
  default     = null
}

variable "max_batch" {
  description = "CUTQ_MAX_BATCH: largest inference batch."
  type        = number
  default     = 8
}

variable "max_wait_ms" {
  description = "CUTQ_MAX_WAIT_MS: how long the batcher waits after a batch's first job for more jobs."
  type        = number
  default     = 20
}

variable "resize" {
  description = "CUTQ_RESIZE: default resize mode for jobs that do not say (static or dynamic)."
  type        = string
  default     = "static"

  validation {
    condition     = contains(["static", "dynamic"], var.resize)
    error_message = "resize must be static or dynamic."
  }
}

variable "log_format" {
  description = "CUTQ_LOG_FORMAT: json (Cloud Logging picks up severity and trace) or text."
  type        = string
  default     = "json"

  validation {
    condition     = contains(["json", "text"], var.log_format)
    error_message = "log_format must be json or text."
  }
}

variable "extra_env" {
  description = "Further environment variables for the worker container. The worker rejects unknown CUTQ_* names, so only add settings it knows."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------
# Drain job and autoscaler
# ---------------------------------------------------------------------------

variable "drain_job_enabled" {
  description = "Create a Cloud Run job that runs `cutq worker --drain-idle-s N` on the pull subscription (pool shape only), for draining a large backlog with parallel tasks."
  type        = bool
  default     = true
}

variable "drain_job_tasks" {
  description = "Default number of parallel tasks of the drain job (override per execution with `gcloud run jobs execute --tasks`). Each task holds one GPU."
  type        = number
  default     = 1
}

variable "drain_idle_seconds" {
  description = "The drain job's tasks exit after this many seconds without a message."
  type        = number
  default     = 60
}

variable "drain_task_timeout_seconds" {
  description = "Timeout of one drain task; Cloud Run caps GPU job tasks at 1 hour."
  type        = number
  default     = 3600

  validation {
    condition     = var.drain_task_timeout_seconds >= 60 && var.drain_task_timeout_seconds <= 3600
    error_message = "drain_task_timeout_seconds must be between 60 and 3600 (GPU tasks run at most 1 h)."
  }
}

variable "autoscaler_enabled" {
  description = "Pool shape: create the autoscaler's service account with the permissions Cloud Run External Metrics Autoscaling (CREMA, KEDA prometheus scaler on Cloud Monitoring) needs, and output its configuration. The autoscaler itself is deployed with gcloud (see infra/README.md)."
  type        = bool
  default     = true
}

variable "autoscaler_backlog_per_instance" {
  description = "The autoscaler's `threshold`: undelivered jobs per worker instance it aims for. It asks for ceil(backlog / this) instances, so any backlog wakes a pool at 0 (1 job: 1 instance, 51 jobs: 2 at the default 50)."
  type        = number
  default     = 50

  # At 0 CREMA keeps whatever count the pool has (TargetAverageValueScaling returns the
  # current count for a zero target): a pool at 0 would never wake.
  validation {
    condition     = var.autoscaler_backlog_per_instance >= 1
    error_message = "autoscaler_backlog_per_instance must be at least 1 (at 0 the autoscaler never scales a pool up from 0)."
  }
}

variable "autoscaler_bulk_backlog_per_instance" {
  description = "Undelivered bulk jobs per worker instance the autoscaler aims for; the interactive lane's is autoscaler_backlog_per_instance. The count is ceil(interactive / that + bulk / this): a larger value here runs a bulk backlog on fewer instances, for longer."
  type        = number
  default     = 200

  validation {
    condition     = var.autoscaler_bulk_backlog_per_instance >= 1
    error_message = "autoscaler_bulk_backlog_per_instance must be at least 1."
  }
}

variable "autoscaler_image" {
  description = "CREMA (Cloud Run External Metrics Autoscaler) image for the gcloud deploy command in infra/README.md (output autoscaler_image). CREMA's README: images before 1.2 leak memory, use 1.2."
  type        = string
  default     = "us-central1-docker.pkg.dev/cloud-run-oss-images/crema-v1/autoscaler:1.2"
}

variable "autoscaler_polling_interval_seconds" {
  description = "How often the autoscaler polls the backlog metric. Pub/Sub metrics reach Cloud Monitoring with 1-2 min delay, so polling faster gains little."
  type        = number
  default     = 30
}

# ---------------------------------------------------------------------------
# Monitoring and alerts (monitoring.tf)
# ---------------------------------------------------------------------------

variable "monitoring_enabled" {
  description = "Create the log-based metrics, alert policies and dashboard in monitoring.tf. They read the worker's JSON job lines, so keep log_format = \"json\"."
  type        = bool
  default     = true
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel IDs (projects/P/notificationChannels/N) every cutq alert notifies. Empty: alerts still open incidents in the console, but nobody is told."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for channel in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", channel))])
    error_message = "notification_channels must be full IDs: projects/<project>/notificationChannels/<id>."
  }
}

variable "alert_dead_letter_threshold" {
  description = "Alert when the dead-letter subscription holds more than this many jobs (0: any dead letter)."
  type        = number
  default     = 0

  validation {
    condition     = var.alert_dead_letter_threshold >= 0
    error_message = "alert_dead_letter_threshold must be 0 or more."
  }
}

variable "alert_oldest_job_seconds" {
  description = "Alert when the oldest job waiting in the jobs subscription is older than this for 5 minutes. Leave room for a scale-up from zero (autoscaler polling + Pub/Sub metric delay + cold start and warm-up)."
  type        = number
  default     = 1800

  validation {
    condition     = var.alert_oldest_job_seconds >= 60
    error_message = "alert_oldest_job_seconds must be at least 60 (Pub/Sub metrics arrive with 1-2 min delay)."
  }
}

variable "alert_failure_ratio" {
  description = "Alert when failed jobs / settled jobs over 10 minutes exceeds this fraction (0-1)."
  type        = number
  default     = 0.05

  validation {
    condition     = var.alert_failure_ratio > 0 && var.alert_failure_ratio < 1
    error_message = "alert_failure_ratio must be a fraction between 0 and 1."
  }
}

variable "alert_worker_exits" {
  description = "Alert when worker containers exit non-zero more than this many times in 30 minutes (a crash loop: failed start-up or crashes)."
  type        = number
  default     = 3

  validation {
    condition     = var.alert_worker_exits >= 1
    error_message = "alert_worker_exits must be at least 1."
  }
}
