output "service_url" {
  description = "URL of the push service (internal ingress: reachable by Pub/Sub in this project, not the internet)."
  value       = module.cutq.service_url
}

output "jobs_subscription" {
  description = "The push subscription."
  value       = module.cutq.jobs_subscription
}

output "inputs_bucket" {
  description = "Upload images here."
  value       = module.cutq.inputs_bucket
}

output "results_bucket" {
  description = "Results appear here."
  value       = module.cutq.results_bucket
}

output "models_bucket" {
  description = "Upload the InSPyReNet checkpoint here."
  value       = module.cutq.models_bucket
}

output "artifact_registry_repository" {
  description = "Tag the image as <this>/cutq:<tag>."
  value       = module.cutq.artifact_registry_repository
}

output "build_service_account" {
  description = "Pass to gcloud builds submit --service-account."
  value       = module.cutq.build_service_account
}

output "build_bucket" {
  description = "Cloud Build source staging bucket."
  value       = module.cutq.build_bucket
}

output "dashboard_url" {
  description = "Cloud Monitoring dashboard of this deployment."
  value       = module.cutq.dashboard_url
}
