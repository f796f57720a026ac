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
