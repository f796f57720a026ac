output "inputs_bucket" {
  description = "Bucket clients upload images to; every new object becomes a job (GCS notification)."
  value       = google_storage_bucket.inputs.name
}

output "results_bucket" {
  description = "Bucket the worker writes results to, under <output_prefix>/dt=YYYY-MM-DD/<job_id>.<ext>."
  value       = google_storage_bucket.results.name
}

output "models_bucket" {
  description = "Bucket for model checkpoints (CUTQ_CHECKPOINT=gs://<models>/...); the worker can read it."
  value       = google_storage_bucket.models.name
}

output "build_bucket" {
  description = "Bucket for Cloud Build source staging (gcloud builds submit --gcs-source-staging-dir)."
  value       = google_storage_bucket.build.name
}

output "default_output_uri" {
  description = "CUTQ_OUTPUT given to the worker."
  value       = local.worker_env["CUTQ_OUTPUT"]
}

output "jobs_topic" {
  description = "Topic interactive jobs are published to (projects/P/topics/T): CUTQ_JOBS_TOPIC."
  value       = google_pubsub_topic.jobs["interactive"].id
}

output "bulk_topic" {
  description = "Topic bulk jobs are published to (projects/P/topics/T): CUTQ_BULK_TOPIC."
  value       = google_pubsub_topic.jobs["bulk"].id
}

output "bulk_dead_letter_topic" {
  description = "Topic bulk jobs land on after bulk_max_delivery_attempts."
  value       = google_pubsub_topic.dead_letter["bulk"].id
}

output "bulk_subscription" {
  description = "The worker's bulk-lane subscription (pull in the pool shape, push in the service shape; the word none before the image is set in the service shape)."
  value = coalesce(
    try(google_pubsub_subscription.jobs_pull["bulk"].id, null),
    try(google_pubsub_subscription.jobs_push["bulk"].id, null),
    "none",
  )
}

output "bulk_dead_letter_subscription" {
  description = "Subscription holding the bulk lane's dead letters for inspection or replay."
  value       = google_pubsub_subscription.dead_letter["bulk"].id
}

output "events_topic" {
  description = "Topic the worker publishes completion events to."
  value       = google_pubsub_topic.events.id
}

output "dead_letter_topic" {
  description = "Topic jobs land on after max_delivery_attempts."
  value       = google_pubsub_topic.dead_letter["interactive"].id
}

output "jobs_subscription" {
  description = "The worker's subscription (pull in the pool shape, push in the service shape; the word none before the image is set in the service shape)."
  value = coalesce(
    try(google_pubsub_subscription.jobs_pull["interactive"].id, null),
    try(google_pubsub_subscription.jobs_push["interactive"].id, null),
    "none",
  )
}

output "dead_letter_subscription" {
  description = "Subscription holding dead letters for inspection or replay."
  value       = google_pubsub_subscription.dead_letter["interactive"].id
}

output "events_subscription" {
  description = "Pull subscription on the events topic for inspection (null if disabled)."
  value       = one(google_pubsub_subscription.events_tail[*].id)
}

output "worker_service_account" {
  description = "Email of the worker's service account."
  value       = google_service_account.worker.email
}

output "submitter_service_account" {
  description = "Email of the submitter service account (objectCreator on inputs, publisher on jobs)."
  value       = google_service_account.submitter.email
}

output "push_invoker_service_account" {
  description = "Email of the identity in the push subscription's OIDC tokens."
  value       = google_service_account.push_invoker.email
}

output "build_service_account" {
  description = "Full resource name of the Cloud Build service account (for gcloud builds submit --service-account)."
  value       = google_service_account.build.id
}

output "autoscaler_service_account" {
  description = "Email of the CREMA autoscaler's service account (pool shape; null otherwise)."
  value       = one(google_service_account.autoscaler[*].email)
}

output "artifact_registry_repository" {
  description = "Docker repository path to tag images with: <this>/cutq:<tag>."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "worker_pool_name" {
  description = "Name of the Cloud Run worker pool (pool shape, once image is set)."
  value       = one(google_cloud_run_v2_worker_pool.worker[*].name)
}

output "service_url" {
  description = "URL of the Cloud Run push service (service shape, once image is set)."
  value       = one(google_cloud_run_v2_service.worker[*].uri)
}

output "drain_job_name" {
  description = "Name of the Cloud Run drain job (pool shape, once image is set)."
  value       = one(google_cloud_run_v2_job.drain[*].name)
}

output "autoscaler_config_yaml" {
  description = "CREMA configuration (KEDA prometheus scaler on the jobs backlog, read from Cloud Monitoring) to store in Parameter Manager (pool shape)."
  value       = local.autoscaler ? yamlencode(local.autoscaler_config) : null
}

output "autoscaler_image" {
  description = "CREMA image to deploy the autoscaler from (pool shape; see infra/README.md)."
  value       = local.autoscaler ? var.autoscaler_image : null
}

output "dashboard_url" {
  description = "Cloud Monitoring dashboard of this deployment (null when monitoring_enabled is false)."
  value       = local.monitoring ? "https://console.cloud.google.com/monitoring/dashboards/builder/${basename(google_monitoring_dashboard.cutq[0].id)}?project=${var.project_id}" : null
}
