#include <catch2/catch.hpp>

#include "bll/config.h"
#include "bll/error.h"
#include "bll/transport/grid.h"

using bll::ConfigError;
using bll::parse_config;
using Catch::Matchers::Contains;

namespace {
const std::string kMinimal =
    "data: {dataset: fashion-mnist, dir: data}\n"
    "model: {type: cnn, widths: [8, 16], blocks: 3}\n"
    "train: {epochs: 1}\n";

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, "f.yaml", overrides);
  } catch (const ConfigError& e) {
    REQUIRE(e.code() == bll::kExitUsage);
    return e.what();
  }
  FAIL("no ConfigError");
  return "";
}
}  // namespace

TEST_CASE("a minimal config resolves with defaults") {
  const auto c = parse_config(kMinimal, "f.yaml", {});
  CHECK(c.data.dataset == "fashion-mnist");
  CHECK(c.model.widths == std::vector<int64_t>{8, 16});
  CHECK(c.train.batch_size == 128);
  CHECK(c.optim.name == "adam");
  CHECK(c.loss.tau == Approx(0.5));
  CHECK(c.loss.feedback == "closed_form");
}

TEST_CASE("overrides take YAML values and win over the file") {
  const auto c = parse_config(kMinimal, "f.yaml", {"train.epochs=5", "model.widths=[4,4,4]", "optim.lr=0.01"});
  CHECK(c.train.epochs == 5);
  CHECK(c.model.widths == std::vector<int64_t>{4, 4, 4});
  CHECK(c.optim.lr == Approx(0.01));
}

TEST_CASE("an unknown key names the file and suggests the nearest key") {
  const auto msg = error_of(kMinimal + "optim: {lr: 0.1, momentun: 0.9}\n");
  CHECK_THAT(msg, Contains("f.yaml") && Contains("unknown key 'optim.momentun'") && Contains("did you mean 'optim.momentum'"));
}

TEST_CASE("a key in the wrong section is pointed to the right one") {
  CHECK_THAT(error_of(kMinimal, {"train.lr=0.1"}), Contains("command line") && Contains("did you mean 'optim.lr'"));
}

TEST_CASE("an unknown section is rejected with the nearest key") {
  CHECK_THAT(error_of(kMinimal + "trian: {epochs: 2}\n"),
             Contains("unknown key 'trian.epochs' (did you mean 'train.epochs'?)"));
  CHECK_THAT(error_of(kMinimal + "zzz: 3\n"), Contains("unknown key 'zzz'"));
}

TEST_CASE("errors in the file give its line") {
  CHECK_THAT(error_of(kMinimal + "optim:\n  lr: fast\n"), Contains("f.yaml:5: key 'optim.lr': expected a number"));
  CHECK_THAT(error_of(kMinimal + "optim:\n  lrr: 0.1\n"), Contains("f.yaml:5: unknown key 'optim.lrr'"));
}

TEST_CASE("a section or a key written twice is refused with both lines") {
  CHECK_THAT(error_of(kMinimal + "train:\n  seed: 3\n"),
             Contains("f.yaml:4: section 'train' appears twice (first at f.yaml:3); write it once"));
  CHECK_THAT(error_of(kMinimal + "optim:\n  lr: 0.1\n  lr: 0.2\n"),
             Contains("f.yaml:6: key 'optim.lr' appears twice (first at f.yaml:5)"));
  CHECK_NOTHROW(parse_config(kMinimal + "optim:\n  lr: 0.1\n", "f.yaml", {"optim.lr=0.2"}));  // overrides win
}

TEST_CASE("overwriting a run and resuming it at once is refused") {
  CHECK_THAT(error_of(kMinimal, {"runtime.overwrite=true", "checkpoint.resume=auto"}),
             Contains("key 'runtime.overwrite': true removes the run in runtime.run_dir, checkpoints included") &&
                 Contains("choose one"));
  CHECK_NOTHROW(parse_config(kMinimal, "f.yaml", {"runtime.overwrite=true"}));
  CHECK_NOTHROW(parse_config(kMinimal, "f.yaml", {"checkpoint.resume=auto"}));
}

TEST_CASE("a span longer than the network is refused by name") {
  CHECK_THAT(error_of(kMinimal, {"loss.span=4"}),
             Contains("key 'loss.span': a span of 4 blocks is longer than the network (model.blocks 3)"));
  CHECK_NOTHROW(parse_config(kMinimal, "f.yaml", {"loss.span=3"}));
}

TEST_CASE("a wrong type names the key and what was expected") {
  CHECK_THAT(error_of(kMinimal, {"train.batch_size=abc"}),
             Contains("key 'train.batch_size'") && Contains("expected an integer") && Contains("'abc'"));
  CHECK_THAT(error_of(kMinimal, {"data.hflip=maybe"}), Contains("expected true or false"));
  CHECK_THAT(error_of(kMinimal, {"model.widths=8"}), Contains("expected a list of integers"));
  CHECK_THAT(error_of(kMinimal, {"optim.lr=1e-3x"}), Contains("expected a number"));
}

TEST_CASE("out-of-range values and unknown choices are rejected") {
  CHECK_THAT(error_of(kMinimal, {"optim.lr=-1"}), Contains("key 'optim.lr'") && Contains("in ["));
  CHECK_THAT(error_of(kMinimal, {"train.in_flight=0"}), Contains("key 'train.in_flight'"));
  CHECK_THAT(error_of(kMinimal, {"optim.name=rmsprop"}), Contains("one of sgd, adam"));
  CHECK_THAT(error_of(kMinimal, {"model.widths=[8,0]"}), Contains("key 'model.widths'"));
}

TEST_CASE("a missing required key is named") {
  CHECK_THAT(error_of("data: {dataset: mnist, dir: d}\nmodel: {type: mlp, widths: [8], blocks: 2}\n"),
             Contains("f.yaml") && Contains("missing required key 'train.epochs'"));
  // data.dir is required for data read from files, not for the generated sequence task.
  const std::string rest = "model: {type: mlp, widths: [8], blocks: 2}\ntrain: {epochs: 1}\n";
  CHECK_THAT(error_of("data: {dataset: mnist}\n" + rest), Contains("missing required key 'data.dir'") && Contains("mnist"));
  CHECK_NOTHROW(parse_config("data: {dataset: reversal}\n" + rest, "f.yaml", {}));
}

TEST_CASE("the autoencoder task names what it cannot use") {
  const std::string rest = "model: {type: autoencoder, widths: [4, 8], blocks: 2}\ntrain: {epochs: 1}\n";
  CHECK_THAT(error_of("data: {dataset: mnist, dir: d, task: autoencode}\n" + rest),
             Contains("loss.feedback") && Contains("gradient"));
  CHECK_THAT(error_of("data: {dataset: cifar10, dir: d, task: autoencode}\nloss: {feedback: gradient}\n" + rest),
             Contains("data.task") && Contains("cifar10"));
}

TEST_CASE("model.split must have model.blocks entries") {
  CHECK_THAT(error_of(kMinimal, {"model.split=[1,2]"}), Contains("model.split") && Contains("model.blocks is 3"));
}

TEST_CASE("YAML syntax errors give the line") {
  CHECK_THAT(error_of("data:\n  dataset: [mnist\n"), Contains("f.yaml:") && Contains("YAML syntax error"));
}

TEST_CASE("malformed overrides are rejected") {
  CHECK_THAT(error_of(kMinimal, {"train.epochs"}), Contains("not of the form section.key=value"));
}

TEST_CASE("the resolved YAML parses back to the same configuration") {
  const auto c = parse_config(kMinimal, "f.yaml", {"optim.lr=0.0125", "model.split=[1,1,1]", "runtime.run_dir=x y"});
  const auto back = parse_config(bll::config_to_yaml(c), "resolved", {});
  CHECK(bll::config_to_yaml(back) == bll::config_to_yaml(c));
  CHECK(back.optim.lr == Approx(0.0125));
  CHECK(back.model.split == std::vector<int64_t>{1, 1, 1});
  CHECK(back.runtime.run_dir == "x y");
}

TEST_CASE("the help text lists every key of the schema") {
  const auto help = bll::config_help();
  for (const auto& k : bll::config_schema()) CHECK_THAT(help, Contains(k.name));
}

TEST_CASE("edit distance") {
  CHECK(bll::edit_distance("kitten", "sitting") == 3);
  CHECK(bll::edit_distance("", "abc") == 3);
  CHECK(bll::edit_distance("same", "same") == 0);
}

TEST_CASE("runtime.blocks_per_rank takes a list or auto, and nothing else") {
  const auto c = parse_config(kMinimal, "f.yaml", {"runtime.blocks_per_rank=auto"});
  CHECK(c.runtime.auto_placement);
  CHECK(c.runtime.blocks_per_rank.empty());
  const auto back = parse_config(bll::config_to_yaml(c), "resolved", {});
  CHECK(back.runtime.auto_placement);
  const auto listed = parse_config(kMinimal, "f.yaml", {"runtime.blocks_per_rank=[1,2]"});
  CHECK_FALSE(listed.runtime.auto_placement);
  CHECK(listed.runtime.blocks_per_rank == std::vector<int64_t>{1, 2});
  CHECK_THROWS_WITH(parse_config(kMinimal, "f.yaml", {"runtime.blocks_per_rank=even"}),
                    Contains("key 'runtime.blocks_per_rank': expected a list of integers in [1, 1024], or auto, got 'even'"));
}

TEST_CASE("train.schedule must suit train.method, micro-batches must fit a batch, methods refuse what they cannot run") {
  CHECK(parse_config(kMinimal, "f.yaml", {}).train.schedule == "stream");
  CHECK(parse_config(kMinimal, "f.yaml", {"train.method=bp"}).train.schedule == "gpipe");
  CHECK_THROWS_WITH(parse_config(kMinimal, "f.yaml", {"train.schedule=gpipe"}),
                    Contains("key 'train.schedule': gpipe does not run train.method bll"));
  CHECK_THROWS_WITH(parse_config(kMinimal, "f.yaml", {"train.method=bp", "train.schedule=stream"}),
                    Contains("stream does not run train.method bp"));
  CHECK_THROWS_WITH(parse_config(kMinimal, "f.yaml", {"train.method=bp", "train.micro_batches=100000"}),
                    Contains("key 'train.micro_batches'"));
  CHECK(parse_config(kMinimal, "f.yaml", {"train.method=fa"}).train.schedule == "gpipe");
  for (const char* local : {"train.method=greedy", "train.method=predsim"})
    CHECK(parse_config(kMinimal, "f.yaml", {local}).train.schedule == "stream");
  CHECK_THROWS_WITH(parse_config(kMinimal, "f.yaml", {"train.method=greedy", "train.schedule=1f1b"}),
                    Contains("1f1b does not run train.method greedy"));
  CHECK_THROWS_WITH(parse_config(kMinimal, "f.yaml", {"train.method=predsim", "data.task=autoencode",
                                                       "model.type=autoencoder", "loss.feedback=gradient"}),
                    Contains("key 'train.method': predsim"));
  CHECK(parse_config(kMinimal, "f.yaml", {"train.method=fa", "runtime.device=cuda", "runtime.transport=nccl"})
            .runtime.transport == "nccl");
  CHECK_THROWS_WITH(parse_config(kMinimal, "f.yaml", {"train.sim_weight=1.5"}), Contains("train.sim_weight"));
}

TEST_CASE("runtime.replicas must share the batch equally and divide the ranks") {
  const auto c = parse_config(kMinimal, "f.yaml", {"train.batch_size=64", "runtime.replicas=4", "runtime.sync=params"});
  CHECK(c.runtime.replicas == 4);
  CHECK(c.runtime.sync == "params");
  CHECK_THAT(error_of(kMinimal, {"train.batch_size=64", "runtime.replicas=3"}),
             Contains("f.yaml: key 'runtime.replicas': 3 replicas cannot share a batch of 64"));
  CHECK_THAT(error_of(kMinimal, {"train.batch_size=64", "runtime.replicas=4", "train.method=bp", "train.micro_batches=32"}),
             Contains("key 'train.micro_batches'"));
  CHECK_THAT(error_of(kMinimal, {"runtime.sync=weights"}), Contains("runtime.sync"));
  bll::check_grid(6, 3);
  CHECK_THROWS_WITH(bll::check_grid(4, 3), Contains("key 'runtime.replicas': 3 replicas do not divide the 4 ranks"));
}

TEST_CASE("a list or a mapping where a key belongs is a configuration error (found by fuzz_config)") {
  CHECK_THAT(error_of("data: {dataset: mnist, dir: d}\nloss:\n  ? tau: 0.5\n"),
             Contains("f.yaml:3: a key must be a plain name, not a list or a mapping"));
  CHECK_THAT(error_of("? [data]\n: {dataset: mnist}\n"), Contains("a key must be a plain name"));
}
