output "inputs_bucket" {
  description = "Upload images here (gs://<this>/...) to create jobs."
  value       = module.cutq.inputs_bucket
}

output "results_bucket" {
  description = "Results appear here under cutouts/dt=YYYY-MM-DD/."
  value       = module.cutq.results_bucket
}

output "models_bucket" {
  description = "Upload the InSPyReNet checkpoint here."
  value       = module.cutq.models_bucket
}

output "build_bucket" {
  description = "Cloud Build source staging bucket."
  value       = module.cutq.build_bucket
}

output "jobs_topic" {
  description = "Publish job messages here."
  value       = module.cutq.jobs_topic
}

output "bulk_topic" {
  description = "Publish bulk job messages here (README, \"Lanes\")."
  value       = module.cutq.bulk_topic
}

output "events_subscription" {
  description = "Pull completion events from here."
  value       = module.cutq.events_subscription
}

output "dead_letter_subscription" {
  description = "Dead-lettered jobs are kept here."
  value       = module.cutq.dead_letter_subscription
}

output "artifact_registry_repository" {
  description = "Tag the image as <this>/cutq:<tag>."
  value       = module.cutq.artifact_registry_repository
}

output "build_service_account" {
  description = "Pass to gcloud builds submit --service-account."
  value       = module.cutq.build_service_account
}

output "submitter_service_account" {
  description = "Identity for clients that upload and publish."
  value       = module.cutq.submitter_service_account
}

output "worker_pool_name" {
  description = "Worker pool (pool shape)."
  value       = module.cutq.worker_pool_name
}

output "service_url" {
  description = "Push service URL (service shape)."
  value       = module.cutq.service_url
}

output "drain_job_name" {
  description = "Drain job (pool shape)."
  value       = module.cutq.drain_job_name
}

output "autoscaler_service_account" {
  description = "Identity for the CREMA autoscaler (pool shape)."
  value       = module.cutq.autoscaler_service_account
}

output "autoscaler_config_yaml" {
  description = "CREMA configuration to store in Parameter Manager (pool shape)."
  value       = module.cutq.autoscaler_config_yaml
}

output "autoscaler_image" {
  description = "CREMA image for the autoscaler's gcloud deploy (pool shape)."
  value       = module.cutq.autoscaler_image
}

output "dashboard_url" {
  description = "Cloud Monitoring dashboard of this deployment."
  value       = module.cutq.dashboard_url
}
