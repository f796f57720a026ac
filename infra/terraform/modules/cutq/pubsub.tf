# Topics: jobs (requests), events (completed | failed) and dead letters.
# Subscriptions: the worker's (pull for the pool/job shapes, OIDC push for the service shape),
# one on the dead-letter topic so dead jobs are kept and inspectable, and an optional
# one on the events topic for looking at completions.
#
# Two lanes (README, "Lanes"): `jobs` is the interactive lane (and what GCS notifications
# publish to), `jobs-bulk` the bulk lane, each with its own worker subscription, retry policy
# and dead-letter topic. Separate topics rather than one topic with filtered subscriptions:
# Google's emulator stores filters but does not apply them, so only this is testable locally.
#
# Every per-lane resource (here and in iam.tf) is declared once, `for_each` over
# `local.lanes`: a lane's names are "<name_prefix>-<lane's topic>" plus a suffix. moved.tf
# maps the addresses of the earlier one-resource-per-lane layout, so a deployed stack keeps
# its topics and subscriptions.

locals {
  lanes = {
    interactive = {
      topic                 = "jobs"
      minimum_backoff_s     = var.retry_minimum_backoff_seconds
      max_delivery_attempts = var.max_delivery_attempts
    }
    # The bulk lane: the same worker serves it behind the interactive one. Its own retry
    # policy and dead-letter topic: a bulk job that keeps failing is retried on the bulk
    # lane's terms and dead-lettered apart from interactive ones.
    bulk = {
      topic                 = "jobs-bulk"
      minimum_backoff_s     = var.bulk_retry_minimum_backoff_seconds
      max_delivery_attempts = var.bulk_max_delivery_attempts
    }
  }
  pull_lanes = local.use_pool ? local.lanes : {}
  push_lanes = local.use_service && local.deploy_workloads ? local.lanes : {}
}

resource "google_pubsub_topic" "jobs" {
  #checkov:skip=CKV_GCP_83:Jobs are small JSON references to objects (no image bytes); Google-managed encryption is the accepted baseline. Add kms_key_name here if your policy requires CMEK.
  for_each = local.lanes

  name    = "${var.name_prefix}-${each.value.topic}"
  project = var.project_id
  labels  = local.labels
}

resource "google_pubsub_topic" "events" {
  #checkov:skip=CKV_GCP_83:Completion events carry object URIs and timings only; Google-managed encryption is the accepted baseline.
  name    = "${var.name_prefix}-events"
  project = var.project_id
  labels  = local.labels
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Dead letters are copies of job messages (object references); Google-managed encryption is the accepted baseline.
  for_each = local.lanes

  name    = "${var.name_prefix}-${each.value.topic}-dead-letter"
  project = var.project_id
  labels  = local.labels
}

# Worker pool / drain job: StreamingPull subscriptions, one per lane.
resource "google_pubsub_subscription" "jobs_pull" {
  for_each = local.pull_lanes

  name                         = "${var.name_prefix}-${each.value.topic}-pull"
  project                      = var.project_id
  topic                        = google_pubsub_topic.jobs[each.key].id
  labels                       = local.labels
  ack_deadline_seconds         = var.ack_deadline_seconds
  message_retention_duration   = "${var.message_retention_seconds}s"
  enable_exactly_once_delivery = var.enable_exactly_once_delivery

  retry_policy {
    minimum_backoff = "${each.value.minimum_backoff_s}s"
    maximum_backoff = "${var.retry_maximum_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = each.value.max_delivery_attempts
  }

  # Never expire for inactivity: a scale-to-zero worker may not pull for weeks.
  expiration_policy {
    ttl = ""
  }

  depends_on = [google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters]
}

# Service shape: Pub/Sub pushes each job to the Cloud Run service with an OIDC token of a
# dedicated invoker service account. Both lanes push to the same service, whose push source
# reads each job's lane from its cutq.lane attribute (a push endpoint cannot tell
# subscriptions apart).
resource "google_pubsub_subscription" "jobs_push" {
  for_each = local.push_lanes

  name                       = "${var.name_prefix}-${each.value.topic}-push"
  project                    = var.project_id
  topic                      = google_pubsub_topic.jobs[each.key].id
  labels                     = local.labels
  ack_deadline_seconds       = var.push_ack_deadline_seconds
  message_retention_duration = "${var.message_retention_seconds}s"

  push_config {
    push_endpoint = local.push_endpoint

    oidc_token {
      service_account_email = google_service_account.push_invoker.email
      audience              = local.push_audience
    }
  }

  retry_policy {
    minimum_backoff = "${each.value.minimum_backoff_s}s"
    maximum_backoff = "${var.retry_maximum_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = each.value.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters,
    google_cloud_run_v2_service_iam_member.push_invoker,
    google_service_account_iam_member.pubsub_agent_signs_push_tokens,
  ]
}

# Dead letters are kept here for inspection and replay as long as jobs are (never expires).
resource "google_pubsub_subscription" "dead_letter" {
  for_each = local.lanes

  name                       = "${var.name_prefix}-${each.value.topic}-dead-letter-inspect"
  project                    = var.project_id
  topic                      = google_pubsub_topic.dead_letter[each.key].id
  labels                     = local.labels
  ack_deadline_seconds       = 60
  message_retention_duration = "${var.message_retention_seconds}s"
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "events_tail" {
  count = var.create_events_subscription ? 1 : 0

  name                       = "${var.name_prefix}-events-tail"
  project                    = var.project_id
  topic                      = google_pubsub_topic.events.id
  labels                     = local.labels
  ack_deadline_seconds       = 30
  message_retention_duration = "86400s"

  # Removed automatically after 31 days without a pull: it is a debugging aid.
  expiration_policy {
    ttl = "2678400s"
  }
}
