// Plans: selectors, later-rules-win resolution, the vLLM fused-group and shape checks, rule files in
// TOML and JSON, and the size accounting.
#include "rtnq/plan.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include <gtest/gtest.h>

#include "test-util.h"

namespace rtnq {
namespace {

using enum Module;

// Fresh randomness per run; the seed is printed so that a failure can be replayed.
struct Rng {
  uint32_t seed;
  std::mt19937_64 gen;
  Rng() : seed(std::random_device{}()), gen(seed) {}
  int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen); }
};
#define SEED_TRACE(rng) SCOPED_TRACE(::testing::Message() << "seed " << (rng).seed)

// SmolLM2-135M's shape: hidden 576 = 4.5 x 128, the case that motivates the divisibility check.
ModelSpec smollm2_spec() {
  ModelSpec s;
  s.hidden_size = 576;
  s.intermediate_size = 1536;
  s.num_layers = 30;
  s.num_heads = 9;
  s.num_kv_heads = 3;
  s.head_dim = 64;
  s.vocab_size = 49152;
  s.tie_word_embeddings = true;
  return s;
}

using test::small_llama_spec;  // dimensions every power-of-two group up to 128 divides

PlanRule rule(std::string_view sel, Precision p) {
  auto r = parse_rule_selector(sel, p, "test " + std::string(sel));
  EXPECT_TRUE(r.has_value()) << sel << ": " << r.status().message();
  return r.has_value() ? *r : PlanRule{};
}

std::string resolve_error(const Plan& plan, const ModelSpec& spec) {
  auto t = resolve_plan(plan, spec);
  EXPECT_FALSE(t.has_value());
  return t.has_value() ? std::string() : t.status().message();
}

// ------------------------------------------------------------------------------------------------
// LayerSet

TEST(PlanLayerSet, EveryFormResolvesToTheRightLayers) {
  Rng rng;
  SEED_TRACE(rng);
  for (int trial = 0; trial < 50; ++trial) {
    const int64_t L = rng.uniform(1, 80);
    const int64_t n = rng.uniform(1, L);
    auto expect_range = [&](std::string_view text, int64_t first, int64_t count) {
      auto s = parse_layer_set(text);
      ASSERT_TRUE(s.has_value()) << text << ": " << s.status().message();
      auto r = s->resolve(L);
      ASSERT_TRUE(r.has_value()) << text << ": " << r.status().message();
      ASSERT_EQ(int64_t(r->size()), count) << text << " of " << L;
      for (int64_t i = 0; i < count; ++i) EXPECT_EQ((*r)[size_t(i)], first + i) << text << " of " << L;
      // The canonical text parses back to the same set.
      auto back = parse_layer_set(s->to_string());
      ASSERT_TRUE(back.has_value());
      EXPECT_EQ(*back, *s);
    };
    expect_range("all", 0, L);
    expect_range(" ALL ", 0, L);
    expect_range(fmt::format("first:{}", n), 0, n);
    expect_range(fmt::format("last:{}", n), L - n, n);
    expect_range(fmt::format("middle:{}", n), (L - n) / 2, n);
    const int64_t a = rng.uniform(0, L - 1), b = rng.uniform(a, L - 1);
    expect_range(fmt::format("{}-{}", a, b), a, b - a + 1);
    expect_range(fmt::format("{}", a), a, 1);
    // Negative indices count from the end.
    expect_range(fmt::format("{}--1", -n), L - n, n);
    expect_range("-1", L - 1, 1);
  }
}

TEST(PlanLayerSet, ListsAreUnionsSortedWithoutDuplicates) {
  auto s = parse_layer_set("7, 0,3,5-7, -1");
  ASSERT_TRUE(s.has_value()) << s.status().message();
  auto r = s->resolve(10);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, (std::vector<int64_t>{0, 3, 5, 6, 7, 9}));
  EXPECT_EQ(format_layer_list(*r), "0, 3, 5-7, 9");
  EXPECT_EQ(s->to_string(), "7,0,3,5-7,-1");
  // A mixed-sign range is checked against the model: 2--1 is 2..L-1.
  auto m = parse_layer_set("2--1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m->resolve(5), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_FALSE(m->resolve(2).has_value());  // 2 is out of range for 2 layers
}

TEST(PlanLayerSet, BadTextAndOutOfRangeAreRefused) {
  for (std::string_view bad : {"", "first", "first:", "first:0", "last:-2", "middle:x", "x", "3-1", "1-2-3", "1,,2",
                               "1;2", "0-", "--1", "1.5"}) {
    EXPECT_FALSE(parse_layer_set(bad).has_value()) << "'" << bad << "' should not parse";
  }
  Rng rng;
  SEED_TRACE(rng);
  const int64_t L = rng.uniform(1, 60);
  for (std::string text : {fmt::format("{}", L), fmt::format("first:{}", L + 1), fmt::format("last:{}", L + 3),
                           fmt::format("{}", -L - 1), fmt::format("0-{}", L)}) {
    auto s = parse_layer_set(text);
    ASSERT_TRUE(s.has_value()) << text;
    auto r = s->resolve(L);
    ASSERT_FALSE(r.has_value()) << text << " of " << L;
    EXPECT_NE(r.status().message().find(std::to_string(L)), std::string::npos) << r.status().message();
  }
}

// ------------------------------------------------------------------------------------------------
// ModuleSet

TEST(PlanModuleSet, NamesAndGroups) {
  auto is = [](std::string_view text, ModuleSet want) {
    auto s = parse_module_set(text);
    ASSERT_TRUE(s.has_value()) << text << ": " << s.status().message();
    EXPECT_EQ(s->mask, want.mask) << text;
  };
  is("q", ModuleSet::of({kQ}));
  is("down", ModuleSet::of({kDown}));
  is("qkv", ModuleSet::of({kQ, kK, kV}));
  is("attn", ModuleSet::of({kQ, kK, kV, kO}));
  is("mlp", ModuleSet::of({kGate, kUp, kDown}));
  is("gate_up", ModuleSet::of({kGate, kUp}));
  is("all", ModuleSet::all());
  is("qkv,o", ModuleSet::of({kQ, kK, kV, kO}));
  is(" Q , K_proj,v ", ModuleSet::of({kQ, kK, kV}));
  is("attn,mlp", ModuleSet::all());
  is("down_proj,gate_up_proj", ModuleSet::of({kGate, kUp, kDown}));
  EXPECT_EQ(ModuleSet::of({kQ, kK, kV, kDown}).to_string(), "qkv,down");
  EXPECT_EQ(ModuleSet::of({kO, kGate, kUp}).to_string(), "o,gate_up");
}

TEST(PlanModuleSet, EverySubsetRoundTripsThroughText) {
  for (unsigned mask = 1; mask < (1u << kNumModules); ++mask) {
    ModuleSet s{uint8_t(mask)};
    auto back = parse_module_set(s.to_string());
    ASSERT_TRUE(back.has_value()) << s.to_string();
    EXPECT_EQ(back->mask, mask) << s.to_string();
  }
}

TEST(PlanModuleSet, BadNamesAreRefusedWithTheReason) {
  for (std::string_view bad : {"", "qk", "q,,k", "mlp,foo", "attention"})
    EXPECT_FALSE(parse_module_set(bad).has_value()) << bad;
  auto e = parse_module_set("embed_tokens");
  ASSERT_FALSE(e.has_value());
  EXPECT_NE(e.status().message().find("always kept"), std::string::npos) << e.status().message();
  auto l = parse_module_set("lm_head");
  ASSERT_FALSE(l.has_value());
  EXPECT_NE(l.status().message().find("--lm-head"), std::string::npos) << l.status().message();
}

// ------------------------------------------------------------------------------------------------
// The CLI selector grammar

TEST(PlanSelector, EveryForm) {
  struct Case {
    std::string_view sel;
    LayerSet layers;
    ModuleSet modules;
    int64_t group;
  };
  const std::vector<Case> cases = {
      {"first:2", LayerSet::first(2), ModuleSet::all(), kBaseGroup},
      {"last:2", LayerSet::last(2), ModuleSet::all(), kBaseGroup},
      {"last:2:mlp", LayerSet::last(2), ModuleSet::of({kGate, kUp, kDown}), kBaseGroup},
      {"middle:4:attn@-1", LayerSet::middle(4), ModuleSet::of({kQ, kK, kV, kO}), kPerChannel},
      {"0-3:down", LayerSet::list({{0, 3}}), ModuleSet::of({kDown}), kBaseGroup},
      {"all:qkv,o", LayerSet::all(), ModuleSet::of({kQ, kK, kV, kO}), kBaseGroup},
      {"5,9:all@64", LayerSet::list({{5, 5}, {9, 9}}), ModuleSet::all(), 64},
      {"-1:down", LayerSet::list({{-1, -1}}), ModuleSet::of({kDown}), kBaseGroup},
      {"-2--1:gate_up@32", LayerSet::list({{-2, -1}}), ModuleSet::of({kGate, kUp}), 32},
      {"all", LayerSet::all(), ModuleSet::all(), kBaseGroup},
      {"7@128", LayerSet::list({{7, 7}}), ModuleSet::all(), 128},
  };
  for (const auto& c : cases) {
    auto r = parse_rule_selector(c.sel, Precision::kInt8, "flag --int8 x");
    ASSERT_TRUE(r.has_value()) << c.sel << ": " << r.status().message();
    EXPECT_EQ(r->layers, c.layers) << c.sel;
    EXPECT_EQ(r->modules, c.modules) << c.sel;
    EXPECT_EQ(r->spec.group_size, c.group) << c.sel;
    EXPECT_EQ(r->spec.precision, Precision::kInt8);
    EXPECT_EQ(r->origin, "flag --int8 x");
  }
}

TEST(PlanSelector, BadSelectorsNameTheFlag) {
  for (std::string_view bad : {"", "first", "first:2:mlp:down", "0:1:2", "0:nope", "0@7", "0@abc", "0@0", "x:mlp", "@64"}) {
    auto r = parse_rule_selector(bad, Precision::kInt4, "flag --int4 " + std::string(bad));
    ASSERT_FALSE(r.has_value()) << "'" << bad << "' should not parse";
    EXPECT_NE(r.status().message().find("flag --int4"), std::string::npos) << r.status().message();
  }
  auto k = parse_rule_selector("0:down@64", Precision::kKeep, "flag --keep 0:down@64");
  ASSERT_FALSE(k.has_value());
  EXPECT_NE(k.status().message().find("no group"), std::string::npos) << k.status().message();
}

// ------------------------------------------------------------------------------------------------
// Resolution

TEST(PlanResolve, DefaultIsInt4Group128EverywhereAndLmHeadKept) {
  Rng rng;
  SEED_TRACE(rng);
  const ModelSpec spec = small_llama_spec(rng.uniform(1, 40));
  auto t = resolve_plan(Plan{}, spec);
  ASSERT_TRUE(t.has_value()) << t.status().message();
  ASSERT_EQ(int64_t(t->layers.size()), spec.num_layers);
  for (int64_t l = 0; l < spec.num_layers; ++l)
    for (int m = 0; m < kNumModules; ++m) EXPECT_EQ(t->at(l, Module(m)), (QuantSpec{Precision::kInt4, 128}));
  EXPECT_EQ(t->lm_head.precision, Precision::kKeep);
  EXPECT_EQ(t->embed_tokens.precision, Precision::kKeep);
  EXPECT_EQ(compact_layer_runs(*t), (std::vector<std::pair<int64_t, int64_t>>{{0, spec.num_layers - 1}}));
}

// Random rule lists over fused-safe module sets: every cell must hold the spec of the LAST rule
// selecting it, or the base when none does.
TEST(PlanResolve, LaterRulesWin) {
  Rng rng;
  SEED_TRACE(rng);
  const std::vector<std::string> module_texts = {"all", "qkv", "o", "attn", "mlp", "gate_up", "down", "qkv,down", "o,gate_up"};
  const std::vector<int64_t> groups = {kBaseGroup, 32, 64, 128, kPerChannel};
  for (int trial = 0; trial < 40; ++trial) {
    const ModelSpec spec = small_llama_spec(rng.uniform(1, 32));
    const int64_t L = spec.num_layers;
    Plan plan;
    plan.base = {rng.uniform(0, 1) ? Precision::kInt4 : Precision::kInt8, groups[size_t(rng.uniform(1, 4))]};
    const int n_rules = int(rng.uniform(0, 8));
    for (int i = 0; i < n_rules; ++i) {
      std::string layers;
      switch (rng.uniform(0, 4)) {
        case 0: layers = "all"; break;
        case 1: layers = fmt::format("first:{}", rng.uniform(1, L)); break;
        case 2: layers = fmt::format("last:{}", rng.uniform(1, L)); break;
        case 3: layers = fmt::format("middle:{}", rng.uniform(1, L)); break;
        default: {
          const int64_t a = rng.uniform(0, L - 1);
          layers = fmt::format("{},{}-{}", rng.uniform(0, L - 1), a, rng.uniform(a, L - 1));
        }
      }
      const Precision p = Precision(rng.uniform(0, 2));
      std::string sel = layers + ":" + module_texts[size_t(rng.uniform(0, int64_t(module_texts.size()) - 1))];
      const int64_t g = groups[size_t(rng.uniform(0, 4))];
      if (p != Precision::kKeep && g != kBaseGroup) sel += fmt::format("@{}", g);
      plan.rules.push_back(rule(sel, p));
    }
    auto t = resolve_plan(plan, spec);
    ASSERT_TRUE(t.has_value()) << t.status().message();
    for (int64_t l = 0; l < L; ++l) {
      for (int m = 0; m < kNumModules; ++m) {
        QuantSpec want = plan.base;
        for (const PlanRule& r : plan.rules) {
          auto ls = r.layers.resolve(L);
          ASSERT_TRUE(ls.has_value());
          if (std::find(ls->begin(), ls->end(), l) == ls->end() || !r.modules.contains(Module(m))) continue;
          want = r.spec;
          if (want.group_size == kBaseGroup) want.group_size = plan.base.group_size;
        }
        const QuantSpec& got = t->at(l, Module(m));
        EXPECT_EQ(got.precision, want.precision) << "layer " << l << " " << module_name(Module(m));
        if (want.precision != Precision::kKeep) {
          EXPECT_EQ(got.group_size, want.group_size) << "layer " << l << " " << module_name(Module(m));
        }
      }
    }
    // Runs cover every layer once, in order, and merge only identical rows.
    int64_t next = 0;
    for (auto [a, b] : compact_layer_runs(*t)) {
      EXPECT_EQ(a, next);
      for (int64_t l = a; l <= b; ++l) EXPECT_EQ(t->layers[size_t(l)], t->layers[size_t(a)]);
      if (a > 0) {
        EXPECT_NE(t->layers[size_t(a)], t->layers[size_t(a - 1)]);
      }
      next = b + 1;
    }
    EXPECT_EQ(next, L);
  }
}

TEST(PlanResolve, OverrideOrderMatters) {
  const ModelSpec spec = small_llama_spec(8);
  Plan a;
  a.rules = {rule("all", Precision::kInt8), rule("first:2", Precision::kKeep)};
  Plan b;
  b.rules = {rule("first:2", Precision::kKeep), rule("all", Precision::kInt8)};
  auto ta = resolve_plan(a, spec), tb = resolve_plan(b, spec);
  ASSERT_TRUE(ta.has_value() && tb.has_value());
  EXPECT_EQ(ta->at(0, kQ).precision, Precision::kKeep);
  EXPECT_EQ(ta->at(2, kQ).precision, Precision::kInt8);
  EXPECT_EQ(tb->at(0, kQ).precision, Precision::kInt8);  // the later "all" overrode the keep
}

TEST(PlanResolve, HybridTouchesOnlyItsLayersAndModules) {
  const ModelSpec spec = small_llama_spec(6);
  Plan plan;
  plan.rules = {rule("0-3:mlp@64", Precision::kInt8), rule("last:1:attn", Precision::kKeep)};
  auto t = resolve_plan(plan, spec);
  ASSERT_TRUE(t.has_value()) << t.status().message();
  for (int64_t l = 0; l < 6; ++l) {
    for (int mi = 0; mi < kNumModules; ++mi) {
      const Module m = Module(mi);
      const bool mlp = m == kGate || m == kUp || m == kDown;
      QuantSpec want{Precision::kInt4, 128};
      if (l <= 3 && mlp) want = {Precision::kInt8, 64};
      if (l == 5 && !mlp) want = QuantSpec{};
      EXPECT_EQ(t->at(l, m), want) << "layer " << l << " " << module_name(m);
    }
  }
  EXPECT_EQ(compact_layer_runs(*t), (std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {4, 4}, {5, 5}}));
}

TEST(PlanResolve, SplitQkvIsRefusedNamingLayerModulesAndRule) {
  Rng rng;
  SEED_TRACE(rng);
  const ModelSpec spec = small_llama_spec(12);
  const int64_t layer = rng.uniform(0, 11);
  Plan plan;
  plan.rules = {rule(fmt::format("{}:q", layer), Precision::kInt8)};
  const std::string msg = resolve_error(plan, spec);
  EXPECT_NE(msg.find(fmt::format("layer {}:", layer)), std::string::npos) << msg;
  EXPECT_NE(msg.find("q is int8/128"), std::string::npos) << msg;
  EXPECT_NE(msg.find("k is int4/128"), std::string::npos) << msg;
  EXPECT_NE(msg.find(fmt::format("test {}:q", layer)), std::string::npos) << msg;
  EXPECT_NE(msg.find("qkv_proj"), std::string::npos) << msg;

  // Same precision but a different group is still a split.
  Plan g;
  g.rules = {rule("all:v@64", Precision::kInt4)};
  const std::string gmsg = resolve_error(g, spec);
  EXPECT_NE(gmsg.find("layers 0-11"), std::string::npos) << gmsg;
  EXPECT_NE(gmsg.find("but v is int4/64"), std::string::npos) << gmsg;
}

TEST(PlanResolve, SplitGateUpIsRefused) {
  const ModelSpec spec = small_llama_spec(5);
  Plan plan;
  plan.rules = {rule("2,4:up", Precision::kKeep)};
  const std::string msg = resolve_error(plan, spec);
  EXPECT_NE(msg.find("layers 2, 4"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gate is int4/128"), std::string::npos) << msg;
  EXPECT_NE(msg.find("up is keep"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gate_up_proj"), std::string::npos) << msg;
  // Keeping the pair together is fine.
  plan.rules = {rule("2,4:gate_up", Precision::kKeep)};
  EXPECT_TRUE(resolve_plan(plan, spec).has_value());
}

TEST(PlanResolve, GroupMustDivideInFeatures) {
  const ModelSpec spec = smollm2_spec();
  const std::string msg = resolve_error(Plan{}, spec);
  EXPECT_NE(msg.find("layers 0-29 q, k, v, o, gate, up: in_features 576 is not a multiple of group 128"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("--group-size 64/-1"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("down"), std::string::npos) << "1536 = 12 x 128 must not be reported: " << msg;

  for (int64_t g : {int64_t{64}, int64_t{32}, kPerChannel}) {
    Plan ok;
    ok.base.group_size = g;
    auto t = resolve_plan(ok, spec);
    EXPECT_TRUE(t.has_value()) << g << ": " << t.status().message();
  }
  // Keeping the offending modules also resolves.
  Plan keep;
  keep.rules = {rule("all:attn,gate_up", Precision::kKeep)};
  EXPECT_TRUE(resolve_plan(keep, spec).has_value());

  // A rule's own group: named as responsible.
  Plan r;
  r.base.group_size = 64;
  r.rules = {rule("0:down@1024", Precision::kInt8)};
  const std::string rmsg = resolve_error(r, spec);
  EXPECT_NE(rmsg.find("layer 0 down: in_features 1536 is not a multiple of group 1024"), std::string::npos) << rmsg;
  EXPECT_NE(rmsg.find("test 0:down@1024"), std::string::npos) << rmsg;
  EXPECT_NE(rmsg.find("keep it"), std::string::npos) << rmsg;
}

TEST(PlanResolve, Int4NeedsWholeInt32Words) {
  // stories260K: hidden 64, intermediate 172; 172 int4 values do not fill whole int32 words.
  ModelSpec spec = small_llama_spec(5);
  spec.hidden_size = 64;
  spec.intermediate_size = 172;
  spec.num_heads = 8;
  spec.num_kv_heads = 4;
  spec.head_dim = 8;
  Plan plan;
  plan.base.group_size = kPerChannel;
  const std::string msg = resolve_error(plan, spec);
  EXPECT_NE(msg.find("layers 0-4 down: in_features 172 cannot be packed as int4"), std::string::npos) << msg;
  plan.rules = {rule("all:down", Precision::kInt8)};
  EXPECT_TRUE(resolve_plan(plan, spec).has_value());
  // With group 64 no smaller group divides 172 and per-channel int4 cannot pack: the advice says int8.
  Plan g64;
  g64.base.group_size = 64;
  const std::string gmsg = resolve_error(g64, spec);
  EXPECT_NE(gmsg.find("layers 0-4 down: in_features 172 is not a multiple of group 64"), std::string::npos) << gmsg;
  EXPECT_NE(gmsg.find("use int8 with group -1"), std::string::npos) << gmsg;
  g64.rules = {rule("all:down@-1", Precision::kInt8)};
  EXPECT_TRUE(resolve_plan(g64, spec).has_value());
}

TEST(PlanResolve, RulesSelectingNothingOrTooMuchAreRefused) {
  const ModelSpec spec = small_llama_spec(30);
  Plan plan;
  plan.rules = {rule("first:2", Precision::kKeep), rule("30:down", Precision::kInt8)};
  std::string msg = resolve_error(plan, spec);
  EXPECT_NE(msg.find("test 30:down"), std::string::npos) << msg;
  EXPECT_NE(msg.find("out of range"), std::string::npos) << msg;
  plan.rules = {rule("last:31", Precision::kInt8)};
  msg = resolve_error(plan, spec);
  EXPECT_NE(msg.find("31 layers but the model has 30"), std::string::npos) << msg;
  PlanRule empty = rule("0", Precision::kInt8);
  empty.modules = ModuleSet{};
  plan.rules = {empty};
  EXPECT_NE(resolve_error(plan, spec).find("selects no modules"), std::string::npos);
  Plan bad_base;
  bad_base.base.group_size = 100;
  EXPECT_NE(resolve_error(bad_base, spec).find("power of two"), std::string::npos);
}

TEST(PlanResolve, LmHead) {
  ModelSpec spec = small_llama_spec(4);
  Plan plan;
  plan.base.group_size = 64;
  plan.lm_head = QuantSpec{Precision::kInt8, kBaseGroup};
  auto t = resolve_plan(plan, spec);
  ASSERT_TRUE(t.has_value()) << t.status().message();
  EXPECT_EQ(t->lm_head, (QuantSpec{Precision::kInt8, 64}));
  spec.tie_word_embeddings = true;
  const std::string msg = resolve_error(plan, spec);
  EXPECT_NE(msg.find("tie"), std::string::npos) << msg;
  plan.lm_head = QuantSpec{Precision::kKeep, kBaseGroup};
  EXPECT_TRUE(resolve_plan(plan, spec).has_value());
}

// ------------------------------------------------------------------------------------------------
// Rule files

class PlanFiles : public ::testing::Test {
 protected:
  std::filesystem::path write(const std::string& name, const std::string& text) { return tmp_.write(name, text); }
  std::string load_error(const std::string& name, const std::string& text) {
    auto p = load_plan_file(write(name, text));
    EXPECT_FALSE(p.has_value()) << text;
    return p.has_value() ? std::string() : p.status().message();
  }
  Rng rng_;
  test::TempDir tmp_{"rtnq-plan-test"};
  const std::filesystem::path dir_ = tmp_.path();
};

TEST_F(PlanFiles, TomlAndJsonAreEquivalent) {
  SEED_TRACE(rng_);
  const int64_t first = rng_.uniform(1, 3), a = rng_.uniform(0, 10), b = rng_.uniform(a, 15);
  const auto toml = write("plan.toml", fmt::format(R"(
description = "paper-style: int8 ends, one hybrid"
[base]
bits = 4
group_size = 64

[[rule]]
layers = "first:{0}"     # whole first layers at INT8
modules = "all"
precision = "int8"

[[rule]]
layers = "{1}-{2}"
modules = "mlp"
precision = "keep"

[[rule]]
layers = [-1, "-3--2"]
modules = ["q", "k", "v"]
precision = "int8"
group_size = 32

[lm_head]
precision = "int8"
)",
                                                   first, a, b));
  const auto json = write("plan.json", fmt::format(R"({{
  "base": {{"precision": "int4", "group_size": 64}},
  "rules": [
    {{"layers": "first:{0}", "modules": "all", "precision": "int8"}},
    {{"layers": "{1}-{2}", "modules": "mlp", "precision": "keep"}},
    {{"layers": "-1,-3--2", "modules": "qkv", "bits": 8, "group_size": 32}}
  ],
  "lm_head": {{"precision": "int8"}}
}})",
                                                   first, a, b));
  auto pt = load_plan_file(toml);
  auto pj = load_plan_file(json);
  ASSERT_TRUE(pt.has_value()) << pt.status().message();
  ASSERT_TRUE(pj.has_value()) << pj.status().message();
  EXPECT_EQ(plan_to_json(*pt), plan_to_json(*pj));
  ASSERT_EQ(pt->rules.size(), 3u);
  EXPECT_EQ(pt->rules[1].origin, "plan.toml rule 2");
  EXPECT_EQ(pj->rules[2].origin, "plan.json rule 3");
  EXPECT_EQ(pt->rules[2].spec, (QuantSpec{Precision::kInt8, 32}));
  EXPECT_EQ(pt->rules[0].spec.group_size, kBaseGroup);

  const ModelSpec spec = small_llama_spec(16);
  auto tt = resolve_plan(*pt, spec), tj = resolve_plan(*pj, spec);
  ASSERT_TRUE(tt.has_value()) << tt.status().message();
  ASSERT_TRUE(tj.has_value());
  EXPECT_EQ(plan_table_to_json(*tt), plan_table_to_json(*tj));
  EXPECT_EQ(tt->at(0, kQ), (QuantSpec{Precision::kInt8, 64}));
  EXPECT_EQ(tt->at(15, kK), (QuantSpec{Precision::kInt8, 32}));
  EXPECT_EQ(tt->at(b, kDown).precision, Precision::kKeep);
  EXPECT_EQ(tt->lm_head, (QuantSpec{Precision::kInt8, 64}));

  // plan_to_json is the file schema: it loads back to the same plan.
  auto again = plan_from_json(plan_to_json(*pt), "round-trip");
  ASSERT_TRUE(again.has_value()) << again.status().message();
  EXPECT_EQ(plan_to_json(*again), plan_to_json(*pt));
}

TEST_F(PlanFiles, BadFilesNameTheFileAndRule) {
  std::string msg = load_error("a.toml", "[[rule]]\nprecision = \"int8\"\n[[rule]]\nlayers = \"0\"\nprecison = \"int8\"\n");
  EXPECT_NE(msg.find("a.toml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rule 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'precison'"), std::string::npos) << msg;

  msg = load_error("b.json", R"({"rules": [{"precision": "int8"}, {"precision": "int8"}, {"precision": "int3"}]})");
  EXPECT_NE(msg.find("b.json: rule 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("int3"), std::string::npos) << msg;

  msg = load_error("c.toml", "[[rule]]\nlayers = \"first:x\"\nprecision = \"keep\"\n");
  EXPECT_NE(msg.find("c.toml: rule 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("first:x"), std::string::npos) << msg;

  msg = load_error("d.toml", "[[rule]]\nmodules = \"mlp,ffn\"\nprecision = \"int8\"\n");
  EXPECT_NE(msg.find("rule 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ffn"), std::string::npos) << msg;

  msg = load_error("e.toml", "[[rule]]\nlayers = \"0\"\nprecision = \"int8\"\ngroup_size = 100\n");
  EXPECT_NE(msg.find("rule 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("group_size"), std::string::npos) << msg;

  msg = load_error("f.toml", "[[rule]]\nlayers = \"0\"\n");
  EXPECT_NE(msg.find("missing 'precision'"), std::string::npos) << msg;

  msg = load_error("g.toml", "[bsae]\nbits = 4\n");
  EXPECT_NE(msg.find("unknown key 'bsae'"), std::string::npos) << msg;

  msg = load_error("h.toml", "[base]\nbits = 3\n");
  EXPECT_NE(msg.find("[base]"), std::string::npos) << msg;

  msg = load_error("i.toml", "[embed_tokens]\nprecision = \"int8\"\n");
  EXPECT_NE(msg.find("always kept"), std::string::npos) << msg;

  msg = load_error("j.toml", "[[rule]\nlayers = 1\n");
  EXPECT_NE(msg.find("j.toml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 1"), std::string::npos) << msg;

  msg = load_error("k.json", "{\"rules\": [");
  EXPECT_NE(msg.find("k.json"), std::string::npos) << msg;

  msg = load_error("l.yaml", "rules: []\n");
  EXPECT_NE(msg.find(".toml or .json"), std::string::npos) << msg;

  msg = load_error("m.json", R"({"rules": [{"layers": 0, "precision": "keep", "group_size": 64}]})");
  EXPECT_NE(msg.find("rule 1"), std::string::npos) << msg;

  auto missing = load_plan_file(dir_ / "nope.toml");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

// ------------------------------------------------------------------------------------------------
// Statistics

ModelSpec tiny_spec() {
  ModelSpec s;
  s.hidden_size = 64;
  s.intermediate_size = 128;
  s.num_layers = 2;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 16;
  s.vocab_size = 100;
  s.tie_word_embeddings = false;
  return s;
}

TEST(PlanStats, HandComputedMixedPlan) {
  // Linears per layer: q 64x64, k 32x64, v 32x64, o 64x64, gate/up 128x64, down 64x128 = 36864 weights.
  // Base int4/32, layer 1 mlp kept, lm_head int8/64; bf16 model and scales.
  Plan plan;
  plan.base = {Precision::kInt4, 32};
  plan.rules = {rule("1:mlp", Precision::kKeep)};
  plan.lm_head = QuantSpec{Precision::kInt8, 64};
  auto t = resolve_plan(plan, tiny_spec());
  ASSERT_TRUE(t.has_value()) << t.status().message();
  const PlanStats st = plan_stats(*t, tiny_spec(), DType::kBF16, DType::kBF16);
  EXPECT_EQ(st.candidate_weights, 73728);
  EXPECT_EQ(st.weights_int4, 36864 + 12288);
  EXPECT_EQ(st.weights_keep, 24576);
  EXPECT_EQ(st.weights_int8, 0);
  EXPECT_EQ(st.linears_int4, 11);
  EXPECT_EQ(st.linears_keep, 3);
  // (49152 * 4 + 24576 * 16) / 73728 = 8; scales add 16 bits per 32 int4 weights: 24576 / 73728.
  EXPECT_DOUBLE_EQ(st.avg_bits, 8.0);
  EXPECT_DOUBLE_EQ(st.avg_bits_with_scales, 614400.0 / 73728.0);
  // Layer 0: 18432 packed + 2304 scales + 7 x 16 shapes; layer 1 attn: 6144 + 768 + 4 x 16, mlp 49152;
  // norms 2 x 2 x 64 x 2 = 512; embeddings 12800 + final norm 128; lm_head int8: 6400 + 200 + 16.
  EXPECT_EQ(st.predicted_bytes, 97032u);
  // Every tensor at bf16: (73728 + 6400 + 6400 + 256 + 64) x 2.
  EXPECT_EQ(st.original_bytes, 173696u);
}

TEST(PlanStats, HandComputedInt8PerChannel) {
  Plan plan;
  plan.base = {Precision::kInt8, kPerChannel};
  auto t = resolve_plan(plan, tiny_spec());
  ASSERT_TRUE(t.has_value()) << t.status().message();
  const PlanStats st = plan_stats(*t, tiny_spec(), DType::kBF16, DType::kF32);
  // One f32 scale per row: 2 x (64+32+32+64+128+128+64) = 1024 rows.
  EXPECT_DOUBLE_EQ(st.avg_bits, 8.0);
  EXPECT_DOUBLE_EQ(st.avg_bits_with_scales, 8.0 + 1024.0 * 32.0 / 73728.0);
  EXPECT_EQ(st.predicted_bytes, 73728u + 4096u + 14u * 16u + 512u + 12928u + 12800u);
}

TEST(PlanStats, EverythingKeptCostsTheOriginalAndInt4IsAboutAQuarter) {
  Rng rng;
  SEED_TRACE(rng);
  ModelSpec spec = small_llama_spec(rng.uniform(1, 20));
  spec.hidden_size = 64 * rng.uniform(1, 8);
  spec.num_heads = spec.hidden_size / 64;
  spec.num_kv_heads = 1;
  spec.intermediate_size = 128 * rng.uniform(1, 8);
  spec.vocab_size = rng.uniform(10, 5000);
  spec.tie_word_embeddings = rng.uniform(0, 1) == 1;
  spec.attention_bias = rng.uniform(0, 1) == 1;
  Plan keep;
  keep.base = {Precision::kKeep, 128};
  auto tk = resolve_plan(keep, spec);
  ASSERT_TRUE(tk.has_value()) << tk.status().message();
  const PlanStats sk = plan_stats(*tk, spec, DType::kF16, DType::kF16);
  EXPECT_EQ(sk.predicted_bytes, sk.original_bytes);
  EXPECT_DOUBLE_EQ(sk.avg_bits, 16.0);
  EXPECT_DOUBLE_EQ(sk.avg_bits_with_scales, 16.0);
  EXPECT_EQ(sk.weights_keep, sk.candidate_weights);

  Plan int4;
  int4.base.group_size = 64;
  auto t4 = resolve_plan(int4, spec);
  ASSERT_TRUE(t4.has_value()) << t4.status().message();
  const PlanStats s4 = plan_stats(*t4, spec, DType::kF16, DType::kF16);
  EXPECT_DOUBLE_EQ(s4.avg_bits, 4.0);
  EXPECT_DOUBLE_EQ(s4.avg_bits_with_scales, 4.25);
  EXPECT_EQ(s4.original_bytes, sk.original_bytes);
  // Linears shrink from 16 to 4.25 bits plus 16 bytes of weight_shape each; the rest is unchanged.
  const uint64_t rest = sk.original_bytes - uint64_t(sk.candidate_weights) * 2;
  EXPECT_EQ(s4.predicted_bytes, rest + uint64_t(s4.candidate_weights) * 17 / 32 + uint64_t(7 * spec.num_layers) * 16);
}

}  // namespace
}  // namespace rtnq
