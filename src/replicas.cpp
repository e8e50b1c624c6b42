#include "bll/replicas.h"

#include <algorithm>

#include "bll/host_reads.h"

namespace bll {
namespace {

// One contiguous buffer of the tensors, flattened in order.
torch::Tensor flatten(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> flat;
  flat.reserve(tensors.size());
  for (const auto& t : tensors) flat.push_back(t.detach().reshape({-1}));
  return torch::cat(flat);
}

// Copies consecutive pieces of `flat` back into the tensors.
void unflatten(const torch::Tensor& flat, const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  int64_t at = 0;
  for (const auto& t : tensors) {
    t.copy_(flat.narrow(0, at, t.numel()).view_as(t));
    at += t.numel();
  }
}

}  // namespace

ReplicaSync::ReplicaSync(Transport& group, const RuntimeConfig& runtime)
    : group_(group), grads_(runtime.sync == "grads"), every_(runtime.sync_every) {}

void ReplicaSync::average(const std::vector<torch::Tensor>& tensors) {
  if (tensors.empty()) return;
  auto flat = flatten(tensors);
  group_.allreduce_sum(flat);
  flat.div_(double(group_.size()));
  unflatten(flat, tensors);
}

void ReplicaSync::before_step(const std::vector<torch::Tensor>& params) {
  if (!grads_) return;
  // Every parameter's gradient, averaged in place; one that this step left undefined joins as a
  // stand-in of zeros (and stays undefined), so that the replicas always reduce one layout.
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) grads.push_back(p.grad().defined() ? p.grad() : torch::zeros_like(p));
  average(grads);
}

void ReplicaSync::after_step(const std::vector<torch::Tensor>& params, int64_t steps_taken) {
  if (!grads_ && steps_taken % every_ == 0) average(params);
}

double ReplicaSync::end_epoch(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& buffers) {
  double divergence = 0;
  if (!params.empty()) {
    auto mine = flatten(params);
    auto first = mine.clone();
    group_.ibroadcast(first, 0, "replica 0's parameters")->wait();
    divergence = read_scalar((mine - first).abs().max());  // the epoch's end
  }
  if (!grads_) average(params);
  std::vector<torch::Tensor> floats;
  for (const auto& b : buffers)
    if (b.is_floating_point()) floats.push_back(b);
  average(floats);
  return divergence;
}

}  // namespace bll
