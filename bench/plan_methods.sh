# The methods bench/plan.sh times and bench/method_matrix.sh trains, sourced by both so that the
# matrix combines step times and loss curves of the same settings. One entry per method:
# name|class|overrides, class as braid plan's (exact, compressed, local). Top-k (1%, with error
# feedback) stands for the sparse compressors: dgc needs optimizer.name sgd, and
# configs/fortunes_char_transformer.yaml trains with adamw.
# shellcheck disable=SC2034  # used by the scripts that source this file
plan_config=configs/fortunes_char_transformer.yaml
plan_methods=(
  "sync|exact|--set sync.strategy=allreduce"
  "sync+powersgd|compressed|--set sync.strategy=allreduce --set compression.name=powersgd"
  "sync+topk|compressed|--set sync.strategy=allreduce --set compression.name=topk --set compression.error_feedback=ef"
  "local_sgd|local|--set sync.strategy=local_sgd"
  "diloco|local|--set sync.strategy=diloco"
  "streaming_diloco|local|--set sync.strategy=streaming_diloco"
  "co2|local|--set sync.strategy=co2"
)
# Every rank a node of its own (all traffic on TCP), the planner's ring rows, H = 20.
plan_common=(--set runtime.ranks_per_node=1 --set sync.algorithm=ring --set outer.steps=20)
