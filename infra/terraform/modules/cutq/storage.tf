# Buckets: inputs (transient), results (date-partitioned by the worker under dt=YYYY-MM-DD/),
# models (checkpoints) and build (Cloud Build source staging). All private: uniform
# bucket-level access and public access prevention enforced.
#
# Soft delete, decided per bucket (a bucket left without the block gets Cloud Storage's 7-day
# default, and every deleted object stays billed, at its storage class's rate, that long):
#   inputs  off: transient copies the lifecycle deletes on purpose; a week more would double
#                what they cost at the default inputs_retention_days of 7.
#   build   off: source tarballs, reproducible from git, deleted after 7 days.
#   results 7 days, models 7 days: the product and the checkpoints, worth a week's undo after
#                a mistaken delete (on top of versioning's noncurrent_retention_days).

locals {
  soft_delete_week_s = 7 * 24 * 3600 # the provider's default and its minimum when on

  # Cancellation records and run registrations (_cutq/ in the results bucket, cutq.core.control)
  # only matter while a job they name can still be delivered: at most message_retention_seconds
  # in the jobs subscription, then as long again in the dead-letter subscription before a
  # replay. Kept for both plus a day, then deleted: every worker lists _cutq/cancel/ each
  # second, so the records must not pile up for ever.
  control_retention_days = ceil(var.message_retention_seconds / 86400) * 2 + 1
}

resource "google_storage_bucket" "inputs" {
  #checkov:skip=CKV_GCP_62:Access logs would be written per upload of every input image; Cloud Audit Logs (Data Access) cover who read or wrote objects.
  #checkov:skip=CKV_GCP_78:Inputs are transient and deleted by lifecycle after inputs_retention_days; versioning would only keep copies of data meant to disappear.
  name                        = "${var.project_id}-${var.name_prefix}-inputs"
  project                     = var.project_id
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.bucket_force_destroy
  labels                      = local.labels

  soft_delete_policy {
    retention_duration_seconds = 0
  }

  lifecycle_rule {
    condition {
      age = var.inputs_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }
}

resource "google_storage_bucket" "results" {
  #checkov:skip=CKV_GCP_62:Access logs per result object are noise at this volume; Cloud Audit Logs (Data Access) cover object access.
  name                        = "${var.project_id}-${var.name_prefix}-results"
  project                     = var.project_id
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.bucket_force_destroy
  labels                      = local.labels

  # Results are write-once (the worker never overwrites), so versioning only matters for an
  # accidental delete or overwrite by a person; such versions expire after a few days.
  versioning {
    enabled = true
  }

  soft_delete_policy {
    retention_duration_seconds = local.soft_delete_week_s
  }

  dynamic "lifecycle_rule" {
    for_each = var.results_nearline_after_days > 0 ? [var.results_nearline_after_days] : []
    content {
      condition {
        age                   = lifecycle_rule.value
        matches_storage_class = ["STANDARD"]
      }
      action {
        type          = "SetStorageClass"
        storage_class = "NEARLINE"
      }
    }
  }

  dynamic "lifecycle_rule" {
    for_each = var.results_retention_days > 0 ? [var.results_retention_days] : []
    content {
      condition {
        age = lifecycle_rule.value
      }
      action {
        type = "Delete"
      }
    }
  }

  lifecycle_rule {
    condition {
      age            = local.control_retention_days
      matches_prefix = ["_cutq/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }
}

resource "google_storage_bucket" "models" {
  #checkov:skip=CKV_GCP_62:A handful of checkpoint reads per instance start; Cloud Audit Logs (Data Access) cover them.
  name                        = "${var.project_id}-${var.name_prefix}-models"
  project                     = var.project_id
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.bucket_force_destroy
  labels                      = local.labels

  versioning {
    enabled = true
  }

  soft_delete_policy {
    retention_duration_seconds = local.soft_delete_week_s
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket" "build" {
  #checkov:skip=CKV_GCP_62:Holds only Cloud Build source tarballs for a few days; Cloud Audit Logs cover access.
  #checkov:skip=CKV_GCP_78:Source tarballs are reproducible from git and expire after 7 days; versioning adds nothing.
  name                        = "${var.project_id}-${var.name_prefix}-build"
  project                     = var.project_id
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  labels                      = local.labels

  soft_delete_policy {
    retention_duration_seconds = 0
  }

  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "Delete"
    }
  }
}

# GCS -> jobs topic: every finalized object in the inputs bucket becomes a job with the
# worker's defaults. OBJECT_FINALIZE also fires on copy/rewrite; the worker's job_id includes
# the object generation, so a rewrite is a new job and a redelivery is not.
resource "google_storage_notification" "inputs_to_jobs" {
  bucket             = google_storage_bucket.inputs.name
  topic              = google_pubsub_topic.jobs["interactive"].id
  payload_format     = "JSON_API_V1"
  event_types        = ["OBJECT_FINALIZE"]
  object_name_prefix = var.notification_object_prefix
  custom_attributes = {
    cutq-source = "gcs-notification"
  }

  depends_on = [google_pubsub_topic_iam_member.gcs_publishes_jobs]
}
