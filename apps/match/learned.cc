#include "apps/match/learned.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>

#include "apps/match/match_ops.h"
#include "ddn/batch.h"
#include "ddn/error.h"
#include "ddn/graph/graph.h"
#include "ddn/graph/ops.h"
#include "ddn/graph/optim.h"
#include "ddn/node.h"
#include "ddn/params.h"
#include "ddn/random.h"

namespace ddn::match {
namespace {

using graph::Mode;
using ConstMap = Eigen::Map<const RowMatrix>;
using Map = Eigen::Map<RowMatrix>;

// Features (B, N_a + N_b, D) and ground-truth masks (B, N_a, N_b) of pairs[order[begin..end)].
void Gather(const std::vector<TrainingPair>& pairs, const std::vector<int>& order, size_t begin, size_t end,
            Tensor* desc, Tensor* truth) {
  const int64_t na = pairs[order[begin]].a.size(), nb = pairs[order[begin]].b.size();
  const int64_t d = pairs[order[begin]].a.descriptors.cols(), B = static_cast<int64_t>(end - begin);
  *desc = Tensor({B, na + nb, d});
  *truth = Tensor({B, na, nb});
  for (int64_t q = 0; q < B; ++q) {
    const TrainingPair& pair = pairs[order[begin + q]];
    if (pair.a.size() != na || pair.b.size() != nb) throw InvalidInput("training pairs differ in keypoint counts");
    Map(desc->problem(q), na, d) = pair.a.descriptors;
    Map(desc->problem(q) + na * d, nb, d) = pair.b.descriptors;
    for (const Match& m : pair.truth) truth->problem(q)[m.a * nb + m.b] = 1.0;
  }
}

}  // namespace

RowMatrix DistanceMatrix(const Keypoints& a, const Keypoints& b) {
  RowMatrix m = -2.0 * a.descriptors * b.descriptors.transpose();
  m.colwise() += a.descriptors.rowwise().squaredNorm();
  m.rowwise() += b.descriptors.rowwise().squaredNorm().transpose();
  return (m.array().max(0.0) + 1e-18).sqrt();
}

struct LearnedMatcher::Impl {
  LearnedOptions options;
  int descriptor_size;
  int64_t rows_a = -1;  // N_a the graph was built for
  std::unique_ptr<graph::Graph> graph;
  graph::Graph::NodeId loss = -1, plan = -1;
  // The trained map, kept outside the graph so that Plan works for any keypoint counts.
  RowMatrix weight;
  Eigen::RowVectorXd bias;

  void Build(int64_t na) {
    if (graph && rows_a == na) return;
    RowMatrix w = weight;
    Eigen::RowVectorXd b = bias;
    graph = std::make_unique<graph::Graph>();
    auto desc = graph->Input("desc");
    auto truth = graph->Input("truth");
    graph::Graph::NodeId map;
    if (options.diagonal) {
      map = graph->Add("map", std::make_unique<FeatureWeights>(descriptor_size), {desc});
    } else {
      map = graph->Add("map", std::make_unique<graph::Linear>(descriptor_size, options.features, options.seed), {desc});
    }
    auto cost = graph->Add("cost", std::make_unique<PairwiseDistance>(na), {map});
    graph::NodeLayerOptions node_options;
    node_options.threads = options.threads;
    plan = graph->Add("transport",
                      std::make_unique<graph::NodeLayer>(
                          "optimal_transport",
                          std::map<std::string, std::string>{{"gamma", FormatDouble(options.gamma)}}, node_options),
                      {cost});
    loss = graph->Add("loss", std::make_unique<MatchNll>(), {plan, truth});
    rows_a = na;
    // The bias of the map cancels in the distances: fixed at 0, not trained.
    for (graph::Parameter* p : graph->Parameters())
      if (p->name == "map.bias") p->trainable = false;
    SetMap(w, b);
  }
  void SetMap(const RowMatrix& w, const Eigen::RowVectorXd& b) {
    for (graph::Parameter* p : graph->Parameters()) {
      if (options.diagonal) {
        if (p->name == "map.weight") Map(p->value.data(), 1, descriptor_size) = w.diagonal().transpose();
        continue;
      }
      if (p->name == "map.weight") Map(p->value.data(), descriptor_size, options.features) = w;
      if (p->name == "map.bias") Map(p->value.data(), 1, options.features) = b;
    }
  }
  void GetMap() {
    for (graph::Parameter* p : graph->Parameters()) {
      if (options.diagonal) {
        if (p->name == "map.weight") weight.diagonal() = ConstMap(p->value.data(), descriptor_size, 1);
        continue;
      }
      if (p->name == "map.weight") weight = ConstMap(p->value.data(), descriptor_size, options.features);
      if (p->name == "map.bias") bias = ConstMap(p->value.data(), 1, options.features);
    }
  }
};

LearnedMatcher::LearnedMatcher(int descriptor_size, const LearnedOptions& options) : impl_(new Impl) {
  if (options.features < 1 || options.gamma <= 0 || options.epochs < 0 || options.batch_size < 1 ||
      options.learning_rate <= 0)
    throw InvalidInput("invalid options of the learned matcher");
  impl_->options = options;
  impl_->descriptor_size = descriptor_size;
  // Identity start (the raw similarity) where the widths allow; else the first F coordinates.
  const int width = options.diagonal ? descriptor_size : options.features;
  impl_->options.features = width;
  impl_->weight = RowMatrix::Zero(descriptor_size, width);
  for (int k = 0; k < std::min(descriptor_size, width); ++k) impl_->weight(k, k) = 1.0;
  impl_->bias = Eigen::RowVectorXd::Zero(width);
}

LearnedMatcher::~LearnedMatcher() = default;

std::vector<double> LearnedMatcher::Train(const std::vector<TrainingPair>& pairs,
                                          const std::function<void(int, int, int, double)>& progress) {
  if (pairs.empty()) throw InvalidInput("no training pairs");
  Impl& m = *impl_;
  m.Build(pairs[0].a.size());
  graph::AdamOptions adam_options;
  adam_options.learning_rate = m.options.learning_rate;
  graph::Adam adam(m.graph->TrainableParameters(), adam_options);
  graph::LearningRateSchedule schedule;
  schedule.kind = graph::LearningRateSchedule::kCosine;
  schedule.base = m.options.learning_rate;
  schedule.minimum = 0.01 * m.options.learning_rate;
  schedule.total_epochs = std::max(1, m.options.epochs);
  std::vector<int> order(pairs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  Rng rng(m.options.seed * 31 + 5);
  const int steps = static_cast<int>((pairs.size() + m.options.batch_size - 1) / m.options.batch_size);
  std::vector<double> losses;
  for (int epoch = 0; epoch < m.options.epochs; ++epoch) {
    adam.set_learning_rate(schedule.At(epoch));
    rng.Shuffle(&order);
    double sum = 0;
    int seen = 0;
    for (int step = 0; step < steps; ++step) {
      const size_t begin = static_cast<size_t>(step) * m.options.batch_size;
      const size_t end = std::min(pairs.size(), begin + m.options.batch_size);
      Tensor desc, truth;
      Gather(pairs, order, begin, end, &desc, &truth);
      m.graph->Forward({{"desc", desc}, {"truth", truth}}, {m.loss}, Mode::kTrain);
      m.graph->ZeroGrad();
      m.graph->Backward(m.loss);
      adam.Step();
      sum += m.graph->Value(m.loss)[0] * static_cast<double>(end - begin);
      seen += static_cast<int>(end - begin);
      if (progress) progress(epoch, step + 1, steps, sum / seen);
    }
    losses.push_back(sum / seen);
  }
  m.GetMap();
  return losses;
}

double LearnedMatcher::Loss(const std::vector<TrainingPair>& pairs) {
  Impl& m = *impl_;
  m.Build(pairs.at(0).a.size());
  m.SetMap(m.weight, m.bias);
  std::vector<int> order(pairs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  double sum = 0;
  for (size_t begin = 0; begin < pairs.size(); begin += 16) {
    const size_t end = std::min(pairs.size(), begin + 16);
    Tensor desc, truth;
    Gather(pairs, order, begin, end, &desc, &truth);
    m.graph->Forward({{"desc", desc}, {"truth", truth}}, {m.loss}, Mode::kEval);
    sum += m.graph->Value(m.loss)[0] * static_cast<double>(end - begin);
  }
  return sum / static_cast<double>(pairs.size());
}

RowMatrix LearnedMatcher::Plan(const Keypoints& a, const Keypoints& b) const {
  const Impl& m = *impl_;
  Keypoints fa, fb;
  fa.descriptors = (a.descriptors * m.weight).rowwise() + m.bias;
  fb.descriptors = (b.descriptors * m.weight).rowwise() + m.bias;
  Tensor cost({1, a.size(), b.size()});
  Map(cost.data(), a.size(), b.size()) = DistanceMatrix(fa, fb);
  auto node = MakeNode("optimal_transport", {{"gamma", FormatDouble(m.options.gamma)}});
  RunOptions run;
  run.threads = m.options.threads;
  const ForwardResult fwd = Forward(*node, {{"M", cost}}, run);
  return ConstMap(fwd.outputs.at("P").data(), a.size(), b.size());
}

void LearnedMatcher::Save(const std::string& path) const {
  Impl& m = *impl_;
  if (!m.graph) m.Build(1);
  m.SetMap(m.weight, m.bias);
  graph::SaveParameters(*m.graph, path);
}

RowMatrix SinkhornPlan(const Keypoints& a, const Keypoints& b, double gamma, int threads) {
  Tensor cost({1, a.size(), b.size()});
  Map(cost.data(), a.size(), b.size()) = DistanceMatrix(a, b);
  auto node = MakeNode("optimal_transport", {{"gamma", FormatDouble(gamma)}});
  RunOptions run;
  run.threads = threads;
  const ForwardResult fwd = Forward(*node, {{"M", cost}}, run);
  return ConstMap(fwd.outputs.at("P").data(), a.size(), b.size());
}

double ChooseSinkhornGamma(const std::vector<TrainingPair>& pairs, const std::vector<double>& grid, int threads) {
  double best = grid.at(0), best_loss = std::numeric_limits<double>::infinity();
  for (double gamma : grid) {
    double sum = 0, count = 0;
    for (const TrainingPair& pair : pairs) {
      const RowMatrix p = SinkhornPlan(pair.a, pair.b, gamma, threads);
      for (const Match& m : pair.truth) sum -= std::log(static_cast<double>(pair.a.size()) * p(m.a, m.b)), ++count;
    }
    if (count > 0 && sum / count < best_loss) best_loss = sum / count, best = gamma;
  }
  return best;
}

}  // namespace ddn::match
