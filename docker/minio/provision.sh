#!/bin/sh
# The full stack's one-shot `minio-buckets` service (minio/mc image): as MinIO's root, the buckets, one
# policy per service (policies/*.json) and one user per service holding only its policy. Idempotent: a
# rerun updates the policies and the users' secret keys (a rotation) and keeps the attachments.
set -eu

mc alias set stack http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing stack/mlflow stack/dvc

# provision POLICY ACCESS_KEY SECRET_KEY: the policy from policies/POLICY.json, the user, the attachment
provision() {
  mc admin policy create stack "rakuten-$1" "/etc/minio-policies/$1.json" >/dev/null
  mc admin user add stack "$2" "$3" >/dev/null
  if ! out=$(mc admin policy attach stack "rakuten-$1" --user "$2" 2>&1); then
    case "$out" in
      *"already in effect"*) ;;  # attached by an earlier run
      *) echo "$out" >&2; exit 1 ;;
    esac
  fi
  echo "MinIO user $2: policy rakuten-$1"
}

# the MLflow server (--serve-artifacts): read-write on the artifact bucket `mlflow`
provision mlflow "$MINIO_MLFLOW_ACCESS_KEY" "$MINIO_MLFLOW_SECRET_KEY"
# DVC data (Prefect worker, Dask workers, the host's `dvc push/pull`): read-write on `dvc`
provision dvc "$MINIO_DVC_ACCESS_KEY" "$MINIO_DVC_SECRET_KEY"
# the API: read-only on `mlflow`
provision api "$MINIO_API_ACCESS_KEY" "$MINIO_API_SECRET_KEY"
