#include "kernels/knob_space.h"

#include <algorithm>
#include <sstream>

#include "ir/graph.h"

namespace qnnc {

// Each family file declares its own space(s).
KnobSpace conv2d_knob_space();
KnobSpace conv2d_q_knob_space();
KnobSpace dense_knob_space();
std::vector<KnobSpace> conv2d_bitserial_knob_spaces();
std::vector<KnobSpace> conv2d_grouped_knob_spaces();
std::vector<KnobSpace> elementwise_knob_spaces();
std::vector<KnobSpace> pool_knob_spaces();
std::vector<KnobSpace> quant_ops_knob_spaces();
std::vector<KnobSpace> shape_ops_knob_spaces();

const KnobDecl *KnobSpace::find(const std::string &name) const {
  for (const auto &k : knobs)
    if (k.name == name) return &k;
  return nullptr;
}

std::vector<std::string> KnobSpace::tunable() const {
  std::vector<std::string> r;
  for (const auto &k : knobs)
    if (!k.semantic && !k.search.empty()) r.push_back(k.name);
  return r;
}

const std::map<std::string, KnobSpace> &knob_spaces() {
  static const std::map<std::string, KnobSpace> spaces = [] {
    std::map<std::string, KnobSpace> m;
    std::vector<KnobSpace> all{conv2d_knob_space(), conv2d_q_knob_space(), dense_knob_space()};
    for (auto f : {conv2d_bitserial_knob_spaces, conv2d_grouped_knob_spaces, elementwise_knob_spaces,
                   pool_knob_spaces, quant_ops_knob_spaces, shape_ops_knob_spaces})
      for (auto &s : f()) all.push_back(s);
    for (auto &s : all) m[s.family] = s;
    return m;
  }();
  return spaces;
}

bool has_tunable_knobs(const std::string &family) {
  auto it = knob_spaces().find(family);
  return it != knob_spaces().end() && !it->second.tunable().empty();
}

std::string knob_mismatch(const Knobs &have, const Knobs &want) {
  for (const auto &[name, v] : want) {
    auto it = have.find(name);
    if (it == have.end() || it->second != v) return name;
  }
  return "";
}

Knobs normalized_knobs(const KernelSpec &spec, const Knobs &k) {
  auto it = knob_spaces().find(spec.kind);
  return it == knob_spaces().end() || !it->second.normalize ? k : it->second.normalize(spec, k);
}

Knobs normalized_knobs(const KernelSpec &spec, const Knobs &k, const Halide::Target &t) {
  auto it = knob_spaces().find(spec.kind);
  if (it == knob_spaces().end() || !it->second.for_target) return normalized_knobs(spec, k);
  return normalized_knobs(spec, it->second.for_target(spec, k, t));
}

void validate_knobs(const std::string &family, const Knobs &k) {
  const auto &spaces = knob_spaces();
  auto names = [](const auto &items, auto get) {
    std::string s;
    for (const auto &it : items) s += (s.empty() ? "" : ", ") + get(it);
    return s;
  };
  auto f = spaces.find(family);
  if (f == spaces.end())
    throw Error("unknown kernel family '" + printable(family) + "' in --knob (families: " +
                names(spaces, [](const auto &kv) { return kv.first; }) + ")");
  for (const auto &[name, v] : k) {
    const KnobDecl *d = f->second.find(name);
    if (!d)
      throw Error("unknown knob '" + printable(family) + "." + printable(name) + "' (" + family +
                  " knobs: " + names(f->second.knobs, [](const KnobDecl &x) { return x.name; }) + ")");
    bool fine = d->accepts.empty() ? v >= 1 : std::find(d->accepts.begin(), d->accepts.end(), v) != d->accepts.end();
    if (!fine) {
      std::string allowed;
      for (int a : d->accepts) allowed += (allowed.empty() ? "" : "|") + std::to_string(a);
      throw Error("knob '" + family + "." + name + "' = " + std::to_string(v) + ": expected " +
                  (allowed.empty() ? "a positive integer" : allowed));
    }
  }
}

std::string describe_knob_spaces(const std::string &family) {
  std::ostringstream o;
  const auto &spaces = knob_spaces();
  if (!family.empty() && !spaces.count(family)) validate_knobs(family, {});
  for (const auto &[name, s] : spaces) {
    if (!family.empty() && name != family) continue;
    o << name << ": " << s.help << "\n";
    for (const auto &k : s.knobs) {
      std::string vals;
      const auto &list = k.search.empty() ? k.accepts : k.search;
      for (int v : list) vals += (vals.empty() ? "" : " ") + std::to_string(v);
      o << "  " << k.name << std::string(k.name.size() < 18 ? 18 - k.name.size() : 1, ' ') << k.help;
      if (!vals.empty()) o << " [" << (k.search.empty() ? "accepts " : "tuner tries ") << vals << "]";
      if (k.semantic) o << " (set by lowering)";
      else if (k.packs) o << " (re-packs weights)";
      o << "\n";
    }
  }
  return o.str();
}

}  // namespace qnnc
