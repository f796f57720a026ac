terraform {
  # optional() attributes and validation referencing other variables need 1.9+.
  required_version = ">= 1.9"

  required_providers {
    google = {
      source = "hashicorp/google"
      # google_cloud_run_v2_worker_pool with GPU, node_selector and
      # gpu_zonal_redundancy_disabled on services, jobs and worker pools.
      version = ">= 7.0, < 9.0"
    }
  }
}
