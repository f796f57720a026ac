# Artifact Registry for the worker image, and a dedicated Cloud Build identity so
# `gcloud builds submit` works in a fresh project without touching default service accounts.

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Container images hold public code and dependencies (no customer data); Google-managed encryption is sufficient. Set kms_key_name if policy requires CMEK.
  project       = var.project_id
  location      = var.region
  repository_id = var.name_prefix
  description   = "cutq worker images"
  format        = "DOCKER"
  labels        = local.labels

  docker_config {
    immutable_tags = false
  }

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  cleanup_policies {
    id     = "delete-old-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s"
    }
  }
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "cutq image builds (Cloud Build)"
  description  = "Runs infra/cloudbuild.yaml: reads the staged source, pushes the image."
}

resource "google_artifact_registry_repository_iam_member" "build_pushes_images" {
  project    = var.project_id
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.build.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

# infra/cloudbuild.yaml can bake the checkpoint in from the models bucket.
resource "google_storage_bucket_iam_member" "build_reads_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

# Builds with a user-specified service account must log somewhere it can write; Cloud
# Logging needs this project-level role (it has no narrower resource to bind to).
resource "google_project_iam_member" "build_writes_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}
