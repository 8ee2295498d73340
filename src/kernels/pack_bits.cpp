#include "kernels/pack_bits.h"

namespace qnnc {

namespace {

using namespace Halide;
using namespace Halide::Internal;

// e is a vector whose lanes are known to be 0 or 1: (v % 2) or (v & 1) of unsigned lanes, possibly
// widened; returns the lanes as booleans, or an undefined Expr.
Expr as_bits(const Expr &e) {
  const Type t = e.type();  // is_const(x, v) below also matches a broadcast of v
  if (const Mod *m = e.as<Mod>(); m && t.is_uint() && is_const(m->b, 2)) return m->a % m->b != make_zero(t);
  if (const Call *c = e.as<Call>(); c && c->is_intrinsic(Call::bitwise_and) && t.is_uint() && is_const(c->args[1], 1))
    return e != make_zero(t);
  if (const Cast *c = e.as<Cast>(); c && c->type.is_uint() && c->value.type().is_uint())
    if (Expr b = as_bits(c->value); b.defined()) return b;
  return Expr();
}

// True when e is ramp(0, 1, lanes).
bool is_lane_index(const Expr &e) {
  const Ramp *r = e.as<Ramp>();
  return r && is_const_zero(r->base) && is_const_one(r->stride);
}

class PackBits : public IRMutator {
  using IRMutator::visit;
  Expr visit(const VectorReduce *op) override {
    const Type t = op->type;
    const int L = op->value.type().lanes();
    if (op->op == VectorReduce::Add && t.is_scalar() && t.is_uint() && t.bits() == L && (L == 8 || L == 16 || L == 32)) {
      if (const Call *c = op->value.as<Call>(); c && c->is_intrinsic(Call::shift_left)) {
        Expr lane = c->args[1];
        if (const Cast *w = lane.as<Cast>()) lane = w->value;
        if (is_lane_index(lane))
          if (Expr b = as_bits(c->args[0]); b.defined()) return Reinterpret::make(t, b);
      }
    }
    return IRMutator::visit(op);
  }
};

}  // namespace

void pack_bits_as_masks(Halide::Pipeline &p, const Halide::Target &t) {
  if (t.arch == Halide::Target::X86) p.add_custom_lowering_pass(new PackBits);
}

}  // namespace qnnc
