# Addresses of the per-lane resources before they were declared once, for_each over
# local.lanes (pubsub.tf): a stack deployed with the earlier layout moves its state to the new
# addresses on the next apply instead of destroying and recreating topics (and the jobs and
# dead letters they hold) and subscriptions.

# --- topics -----------------------------------------------------------------------------------

moved {
  from = google_pubsub_topic.jobs
  to   = google_pubsub_topic.jobs["interactive"]
}

moved {
  from = google_pubsub_topic.jobs_bulk
  to   = google_pubsub_topic.jobs["bulk"]
}

moved {
  from = google_pubsub_topic.dead_letter
  to   = google_pubsub_topic.dead_letter["interactive"]
}

moved {
  from = google_pubsub_topic.bulk_dead_letter
  to   = google_pubsub_topic.dead_letter["bulk"]
}

# --- subscriptions ----------------------------------------------------------------------------

moved {
  from = google_pubsub_subscription.jobs_pull[0]
  to   = google_pubsub_subscription.jobs_pull["interactive"]
}

moved {
  from = google_pubsub_subscription.jobs_bulk_pull[0]
  to   = google_pubsub_subscription.jobs_pull["bulk"]
}

moved {
  from = google_pubsub_subscription.jobs_push[0]
  to   = google_pubsub_subscription.jobs_push["interactive"]
}

moved {
  from = google_pubsub_subscription.jobs_bulk_push[0]
  to   = google_pubsub_subscription.jobs_push["bulk"]
}

moved {
  from = google_pubsub_subscription.dead_letter
  to   = google_pubsub_subscription.dead_letter["interactive"]
}

moved {
  from = google_pubsub_subscription.bulk_dead_letter
  to   = google_pubsub_subscription.dead_letter["bulk"]
}

# --- grants -----------------------------------------------------------------------------------

moved {
  from = google_pubsub_subscription_iam_member.worker_pulls_jobs[0]
  to   = google_pubsub_subscription_iam_member.worker_pulls_jobs["interactive"]
}

moved {
  from = google_pubsub_subscription_iam_member.worker_pulls_bulk_jobs[0]
  to   = google_pubsub_subscription_iam_member.worker_pulls_jobs["bulk"]
}

moved {
  from = google_pubsub_topic_iam_member.submitter_publishes_jobs
  to   = google_pubsub_topic_iam_member.submitter_publishes_jobs["interactive"]
}

moved {
  from = google_pubsub_topic_iam_member.submitter_publishes_bulk_jobs
  to   = google_pubsub_topic_iam_member.submitter_publishes_jobs["bulk"]
}

moved {
  from = google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters
  to   = google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters["interactive"]
}

moved {
  from = google_pubsub_topic_iam_member.pubsub_agent_publishes_bulk_dead_letters
  to   = google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters["bulk"]
}

moved {
  from = google_pubsub_subscription_iam_member.pubsub_agent_acks_pull[0]
  to   = google_pubsub_subscription_iam_member.pubsub_agent_acks_pull["interactive"]
}

moved {
  from = google_pubsub_subscription_iam_member.pubsub_agent_acks_bulk_pull[0]
  to   = google_pubsub_subscription_iam_member.pubsub_agent_acks_pull["bulk"]
}

moved {
  from = google_pubsub_subscription_iam_member.pubsub_agent_acks_push[0]
  to   = google_pubsub_subscription_iam_member.pubsub_agent_acks_push["interactive"]
}

moved {
  from = google_pubsub_subscription_iam_member.pubsub_agent_acks_bulk_push[0]
  to   = google_pubsub_subscription_iam_member.pubsub_agent_acks_push["bulk"]
}
