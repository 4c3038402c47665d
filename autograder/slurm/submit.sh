#!/usr/bin/env bash
# Submits the job array of grade-class.sbatch (N slices) and the job that merges them once all
# have ended well.
#
#   SUBMISSIONS=/shared/class OUT=/shared/grading PROFILE=/shared/course.toml autograder/slurm/submit.sh 8
#
# Then $OUT holds class.json, results.csv, report.html and feedback/ (and each slice's JSON).
set -euo pipefail
n=${1:?usage: submit.sh N (the number of slices)}
: "${SUBMISSIONS:?set SUBMISSIONS to the class folder}"
export OUT=${OUT:-grading}
here=$(cd "$(dirname "$0")" && pwd)
array=$(sbatch --parsable --export=ALL --array="1-$n" "$here/grade-class.sbatch")
shards=$(for k in $(seq 1 "$n"); do printf ' %q' "$OUT/shard-$k.json"; done)
merge=$(sbatch --parsable --export=ALL --dependency="afterok:$array" --job-name=twochat-merge \
  --output=twochat-merge-%j.out \
  --wrap "${CONFORMANCE:-twochat-conformance} merge $(printf %q "$OUT/class.json")$shards \
--report $(printf %q "$OUT/report.html") --csv $(printf %q "$OUT/results.csv") \
--feedback $(printf %q "$OUT/feedback") --submissions $(printf %q "$SUBMISSIONS")")
echo "grading: job array $array ($n slices); merging: job $merge, once they have all ended well"
