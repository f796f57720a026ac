terraform {
  required_version = ">= 1.9"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.18, < 9.0"
    }
  }

  # Keep state out of laptops for anything but a trial: create a bucket once, then
  # uncomment and `terraform init -migrate-state`.
  # backend "gcs" {
  #   bucket = "MY_PROJECT-tfstate"
  #   prefix = "cutq"
  # }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
