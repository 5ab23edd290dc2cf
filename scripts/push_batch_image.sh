#!/usr/bin/env bash
# Build the project's one image, push it under its commit's tag, and point the stage's AWS Batch job at it:
#   scripts/push_batch_image.sh STAGE
# Run it after `python -m app provision STAGE`, with docker (BuildKit) and the AWS CLI v2 using the same account.
# One tag, git-COMMIT (git-COMMIT-dirty-TIME for uncommitted changes), in a repository whose tags are immutable:
# the job definition (registered here through `provision --image`) and `zappa deploy|update --docker-image-uri`
# name the same tag, so Lambda and Batch run the same bytes; the doctor compares their digests. Nothing is pushed
# as :latest. The stage's Zappa settings are baked in (zappa save-python-settings-file), so the image serves Lambda.
# --provenance=false: Lambda accepts only a plain image manifest, not the attestation index BuildKit adds.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:?usage: scripts/push_batch_image.sh STAGE}
PY=${PY:-.venv/bin/python}
ZAPPA=${ZAPPA:-.venv/bin/zappa}

target=$("$PY" -c '
import sys
from tooling.deploy.stage import load_stage
stage = load_stage(sys.argv[1])
print(stage.region, stage.function_name)' "$stage")
read -r region repository <<<"$target"
repository_uri=$(aws ecr describe-repositories --region "$region" --repository-names "$repository" \
                   --query 'repositories[0].repositoryUri' --output text) || {
  echo "error: no ECR repository $repository: run python -m app provision $stage first" >&2
  exit 1
}
if git rev-parse --verify -q HEAD >/dev/null 2>&1; then
  commit=$(git rev-parse --short=12 HEAD)
  git diff --quiet HEAD || commit="$commit-dirty-$(date -u +%Y%m%d%H%M%S)"
else
  commit=$(date -u +%Y%m%d%H%M%S)
fi
image="$repository_uri:git-$commit"

if [[ -e zappa_settings.py ]]; then
  echo "error: zappa_settings.py exists; move it away (this script generates it for the image)" >&2
  exit 1
fi
trap 'rm -f zappa_settings.py' EXIT
"$ZAPPA" save-python-settings-file "$stage" -o zappa_settings.py >/dev/null

aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "${repository_uri%%/*}"
if aws ecr describe-images --region "$region" --repository-name "$repository" --image-ids "imageTag=git-$commit" \
     >/dev/null 2>&1; then
  echo "$image is already pushed (tags are immutable): not building it again"
else
  docker build --platform linux/amd64 --provenance=false -f batch_fallback/Dockerfile -t "$image" .
  docker push "$image"
fi
"$PY" -m app provision "$stage" --image "$image"

echo "Pushed $image; the Batch job definition runs it from the next job on."
echo "Next: zappa deploy $stage --docker-image-uri $image  (or zappa update $stage --docker-image-uri $image),"
echo "      then python -m app doctor $stage"
