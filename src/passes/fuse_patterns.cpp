// Recognizes multi-node patterns that exporters write for one operation and replaces each with
// a single node: layer normalization (ReduceMean/Sub/Pow/Sqrt/Div as opsets before 17 export
// it), GELU (x * 0.5 * (1 + erf(x / sqrt 2))) and ShuffleNet's channel shuffle
// (Reshape -> Transpose -> Reshape).
#include <cmath>

#include "passes/passes.h"

namespace qnnc {

namespace {

struct Matcher {
  Graph &g;
  std::vector<std::vector<int>> cons = g.consumers();

  // The node producing v when it has op `op`, else null.
  Node *producer(int v, const std::string &op) {
    int p = g.values[v].producer;
    return p >= 0 && g.nodes[p].op == op ? &g.nodes[p] : nullptr;
  }
  bool is_output(int v) const {
    for (int o : g.outputs)
      if (o == v) return true;
    return false;
  }
  // The one node reading v (v read once and not a graph output), when it has op `op`.
  Node *sole_consumer(int v, const std::string &op) {
    if (is_output(v) || cons[v].size() != 1) return nullptr;
    Node &c = g.nodes[cons[v][0]];
    return c.op == op ? &c : nullptr;
  }
  bool single_use(int v) const { return !is_output(v) && cons[v].size() == 1; }
  // The scalar value of a float constant v, or NaN.
  float scalar(int v) const {
    const Value &c = g.values[v];
    return c.data && c.data->size() == 1 ? (*c.data)[0] : NAN;
  }
  // The operand of a two-input node that is not `v`, and whether one of them is v.
  static int other(const Node &n, int v) { return n.inputs[0] == v ? n.inputs[1] : n.inputs[1] == v ? n.inputs[0] : -1; }
};

// Div(d, Sqrt(Add(ReduceMean(Mul(d, d)), eps))) with d = Sub(x, ReduceMean(x)), optionally
// followed by Mul(gamma) and Add(beta) -> LayerNorm(x, gamma, beta).
void fuse_layernorm(Graph &g) {
  Matcher m{g};
  for (auto &q : g.nodes) {
    if (q.op != "Div") continue;
    int d = q.inputs[0], s = q.inputs[1];
    Node *sub = m.producer(d, "Sub"), *sq = m.producer(s, "Sqrt");
    if (!sub || !sq || !m.single_use(s)) continue;
    int x = sub->inputs[0];
    Node *mean = m.producer(sub->inputs[1], "ReduceMean");
    Node *add = m.producer(sq->inputs[0], "Add");
    if (!mean || mean->inputs[0] != x || !m.single_use(sub->inputs[1]) || !add || !m.single_use(sq->inputs[0])) continue;
    int v = g.values[add->inputs[0]].is_const() ? add->inputs[1] : add->inputs[0];
    float eps = m.scalar(Matcher::other(*add, v));
    Node *var = m.producer(v, "ReduceMean");
    if (std::isnan(eps) || !var || !m.single_use(v)) continue;
    Node *sqr = m.producer(var->inputs[0], "Mul");
    if (!sqr || sqr->inputs[0] != d || sqr->inputs[1] != d || !m.single_use(var->inputs[0])) continue;
    bool d_ok = !m.is_output(d);
    for (int c : m.cons[d]) d_ok = d_ok && (&g.nodes[c] == sqr || &g.nodes[c] == &q);
    if (!d_ok) continue;
    const int64_t K = g.values[x].type.shape.back();
    auto per_channel = [&](int c) { return c >= 0 && g.values[c].data && (int64_t)g.values[c].data->size() == K; };
    std::vector<int> outs = q.outputs;
    int gamma = -1, beta = -1;
    if (Node *mul = m.sole_consumer(outs[0], "Mul"); mul && per_channel(Matcher::other(*mul, outs[0]))) {
      gamma = Matcher::other(*mul, outs[0]);
      outs = mul->outputs;
      mul->op.clear();
      if (Node *ad = m.sole_consumer(outs[0], "Add"); ad && per_channel(Matcher::other(*ad, outs[0]))) {
        beta = Matcher::other(*ad, outs[0]);
        outs = ad->outputs;
        ad->op.clear();
      }
    }
    if (gamma < 0) gamma = g.add_const(q.name + ".gamma", {K}, std::vector<float>(K, 1.f));
    if (beta < 0) beta = g.add_const(q.name + ".beta", {K}, std::vector<float>(K, 0.f));
    for (Node *n : {sub, sq, mean, add, var, sqr}) n->op.clear();
    q.op = "LayerNorm";
    q.inputs = {x, gamma, beta};
    q.outputs = outs;
    q.attrs.clear();
    q.set_f("epsilon", eps);
  }
  compact(g);
}

// Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5) -> Gelu(x) (either order of the two Muls' operands).
void fuse_gelu(Graph &g) {
  Matcher m{g};
  for (auto &erf : g.nodes) {
    if (erf.op != "Erf") continue;
    Node *div = m.producer(erf.inputs[0], "Div");
    if (!div || std::fabs(m.scalar(div->inputs[1]) - std::sqrt(2.f)) > 1e-3f || !m.single_use(erf.inputs[0])) continue;
    int x = div->inputs[0];
    Node *add = m.sole_consumer(erf.outputs[0], "Add");
    if (!add || m.scalar(Matcher::other(*add, erf.outputs[0])) != 1.f) continue;
    Node *mx = m.sole_consumer(add->outputs[0], "Mul");
    if (!mx || Matcher::other(*mx, add->outputs[0]) != x) continue;
    Node *half = m.sole_consumer(mx->outputs[0], "Mul");
    if (!half || m.scalar(Matcher::other(*half, mx->outputs[0])) != 0.5f) continue;
    for (Node *n : {div, add, mx}) n->op.clear();
    erf.op = "Gelu";
    erf.inputs = {x};
    erf.outputs = half->outputs;
    half->op.clear();
  }
  compact(g);
}

// Reshape [N, C, H, W] -> [N, G, C/G, H, W], Transpose [0, 2, 1, 3, 4], Reshape -> [N, C, H, W]
// -> channel_shuffle {groups = G}: output channel j * G + i is input channel i * C/G + j.
void fuse_channel_shuffle(Graph &g) {
  Matcher m{g};
  for (auto &r1 : g.nodes) {
    if (r1.op != "Reshape") continue;
    const auto &xs = g.values[r1.inputs[0]].type.shape, &s5 = g.values[r1.outputs[0]].type.shape;
    if (xs.size() != 4 || s5.size() != 5 || s5[0] != xs[0] || s5[1] * s5[2] != xs[1] || s5[3] != xs[2] ||
        s5[4] != xs[3])
      continue;
    Node *t = m.sole_consumer(r1.outputs[0], "Transpose");
    if (!t || t->ints("perm") != std::vector<int64_t>{0, 2, 1, 3, 4}) continue;
    Node *r2 = m.sole_consumer(t->outputs[0], "Reshape");
    if (!r2 || g.values[r2->outputs[0]].type.shape != xs) continue;
    const int64_t groups = s5[1];
    t->op.clear();
    r2->op.clear();
    r1.op = "channel_shuffle";
    r1.attrs.clear();
    r1.set_i("groups", groups);
    r1.outputs = r2->outputs;
  }
  compact(g);
}

}  // namespace

void fuse_patterns(Graph &g) {
  fuse_layernorm(g);
  fuse_gelu(g);
  fuse_channel_shuffle(g);
}

}  // namespace qnnc
