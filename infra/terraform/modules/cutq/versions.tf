terraform {
  # optional() attributes and validation referencing other variables need 1.9+.
  required_version = ">= 1.9"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 7.18.0 fixed a permanent diff on google_cloud_run_v2_worker_pool's
      # scaling.scaling_mode; tests/infra/provider_arguments.json pins the arguments
      # used here against the 7.45.0 documentation.
      version = ">= 7.18, < 9.0"
    }
  }
}
