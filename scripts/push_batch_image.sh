#!/usr/bin/env bash
# Build the project's one image and push it where the stage's AWS Batch job definition pulls from:
#   scripts/push_batch_image.sh STAGE
# Run it after `python -m app provision STAGE`, with docker (BuildKit) and the AWS CLI v2 using the same account.
# Two tags: :latest, which the job definition names (Batch runs it from the next job on), and :git-COMMIT, an
# immutable one for Lambda. The stage's Zappa settings are baked in (zappa save-python-settings-file), so the same
# image serves `zappa deploy STAGE --docker-image-uri ...`, the deployment where exiftool (Perl) runs.
# --provenance=false: Lambda accepts only a plain image manifest, not the attestation index BuildKit adds.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:?usage: scripts/push_batch_image.sh STAGE}
PY=${PY:-.venv/bin/python}
ZAPPA=${ZAPPA:-.venv/bin/zappa}

target=$("$PY" -c '
import sys
from app.deploy.stage import load_stage
stage = load_stage(sys.argv[1])
print(stage.region, stage.environment.get("BATCH_JOB_DEFINITION") or "-")' "$stage")
read -r region definition <<<"$target"
if [[ $definition == - ]]; then
  echo "error: stage $stage names no BATCH_JOB_DEFINITION: run python -m app provision $stage first" >&2
  exit 1
fi

image=$(aws batch describe-job-definitions --region "$region" --job-definition-name "$definition" --status ACTIVE \
          --query 'max_by(jobDefinitions, &revision).containerProperties.image' --output text)
if [[ $image != *.dkr.ecr.*/* ]]; then
  echo "error: job definition $definition has no ECR image (${image}): run python -m app provision $stage" >&2
  exit 1
fi
registry=${image%%/*}
if git rev-parse --verify -q HEAD >/dev/null 2>&1; then
  commit=$(git rev-parse --short=12 HEAD)
  git diff --quiet HEAD || commit="$commit-dirty"
else
  commit=$(date -u +%Y%m%d%H%M%S)
fi
pinned="${image%:*}:git-$commit"

if [[ -e zappa_settings.py ]]; then
  echo "error: zappa_settings.py exists; move it away (this script generates it for the image)" >&2
  exit 1
fi
trap 'rm -f zappa_settings.py' EXIT
"$ZAPPA" save-python-settings-file "$stage" -o zappa_settings.py >/dev/null

aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
docker build --platform linux/amd64 --provenance=false -f batch_fallback/Dockerfile -t "$image" -t "$pinned" .
docker push "$image"
docker push "$pinned"

echo "Pushed $image (AWS Batch runs it from the next job on) and $pinned."
echo "Next: zappa deploy $stage --docker-image-uri $pinned  (later: zappa update $stage --docker-image-uri ...),"
echo "      then python -m app doctor $stage"
