# Identities and least-privilege grants. Every grant to the worker and submitter is on a
# single bucket, topic or subscription; none is project-wide.

resource "google_service_account" "worker" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-worker"
  display_name = "cutq worker (Cloud Run)"
  description  = "Reads inputs, writes results, pulls jobs, publishes events."
}

resource "google_service_account" "submitter" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-submitter"
  display_name = "cutq submitter (clients)"
  description  = "Uploads inputs and publishes jobs. Impersonate it or grant its roles to your backend's identity."
}

resource "google_service_account" "push_invoker" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-push-invoker"
  display_name = "cutq Pub/Sub push invoker"
  description  = "Identity in the OIDC token Pub/Sub attaches to pushes; may only invoke the worker service."
}

# --- worker -----------------------------------------------------------------

resource "google_storage_bucket_iam_member" "worker_reads_inputs" {
  bucket = google_storage_bucket.inputs.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.worker.member
}

resource "google_storage_bucket_iam_member" "worker_creates_results" {
  bucket = google_storage_bucket.results.name
  role   = "roles/storage.objectCreator"
  member = google_service_account.worker.member
}

# To see whether a result already exists (redelivery) and re-emit its event.
resource "google_storage_bucket_iam_member" "worker_reads_results" {
  bucket = google_storage_bucket.results.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.worker.member
}

resource "google_storage_bucket_iam_member" "worker_reads_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.worker.member
}

resource "google_pubsub_subscription_iam_member" "worker_pulls_jobs" {
  for_each = local.pull_lanes

  project      = var.project_id
  subscription = google_pubsub_subscription.jobs_pull[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.worker.member
}

resource "google_pubsub_topic_iam_member" "worker_publishes_events" {
  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.worker.member
}

# --- submitter --------------------------------------------------------------

resource "google_storage_bucket_iam_member" "submitter_uploads_inputs" {
  bucket = google_storage_bucket.inputs.name
  role   = "roles/storage.objectCreator"
  member = google_service_account.submitter.member
}

resource "google_pubsub_topic_iam_member" "submitter_publishes_jobs" {
  for_each = local.lanes

  project = var.project_id
  topic   = google_pubsub_topic.jobs[each.key].name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.submitter.member
}

# --- Google service agents ---------------------------------------------------

# Cloud Storage publishes bucket notifications as its own service agent.
resource "google_pubsub_topic_iam_member" "gcs_publishes_jobs" {
  project = var.project_id
  topic   = google_pubsub_topic.jobs["interactive"].name
  role    = "roles/pubsub.publisher"
  member  = data.google_storage_project_service_account.gcs.member
}

# Dead-lettering: Pub/Sub's service agent must publish to the dead-letter topic and
# subscribe to (acknowledge on) each source subscription.
resource "google_pubsub_topic_iam_member" "pubsub_agent_publishes_dead_letters" {
  for_each = local.lanes

  project = var.project_id
  topic   = google_pubsub_topic.dead_letter[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_acks_pull" {
  for_each = local.pull_lanes

  project      = var.project_id
  subscription = google_pubsub_subscription.jobs_pull[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_acks_push" {
  for_each = local.push_lanes

  project      = var.project_id
  subscription = google_pubsub_subscription.jobs_push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# Push with OIDC: Pub/Sub's service agent mints tokens for the invoker account. Projects
# created after April 2021 already allow this through the agent's own role; granting it on
# this one account keeps older projects working without a project-wide grant.
resource "google_service_account_iam_member" "pubsub_agent_signs_push_tokens" {
  service_account_id = google_service_account.push_invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  count = local.use_service && local.deploy_workloads ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.worker[0].name
  role     = "roles/run.invoker"
  member   = google_service_account.push_invoker.member
}
