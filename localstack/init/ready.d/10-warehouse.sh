#!/bin/bash
# Runs inside LocalStack once it is ready: the warehouse bucket and the Glue database that
# localstack/stage.json names (the stack is deployed with createGlueDatabase false). Idempotent.
set -euo pipefail

bucket="${K2_WAREHOUSE_BUCKET:-k2-warehouse-local}"
database="${K2_GLUE_DATABASE:-cold}"

if awslocal s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
  echo "k2-offload: bucket s3://$bucket exists"
else
  awslocal s3api create-bucket --bucket "$bucket" >/dev/null
  echo "k2-offload: created bucket s3://$bucket"
fi

if ! awslocal glue get-databases >/dev/null 2>&1; then
  echo "k2-offload: Glue is not available in this LocalStack image (a Pro service); Glue tests and deploys will fail"
elif awslocal glue get-database --name "$database" >/dev/null 2>&1; then
  echo "k2-offload: Glue database $database exists"
else
  awslocal glue create-database --database-input "Name=$database,Description=k2 cold tier (LocalStack)" >/dev/null
  echo "k2-offload: created Glue database $database"
fi
