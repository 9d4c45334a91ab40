// The paper's one-hidden-layer mean-field MLP, trained model by model through ALL its steps.
//
// The torch fast path runs every model of a chunk one step at a time: each step streams the
// chunk's activations (M x 16 x 272 doubles, 8.7 MB for 256 models) through memory several
// times, so it is memory-bound. One model's whole training fits in L1/L2 instead: 272 weights,
// the shared input (16 x 272) and one buffer of pre-activation gradients (16 x 272). Here each
// thread takes one model at a time (dynamic scheduling: a thread on a busy core takes fewer)
// and runs all its steps before the next, with the products as register-blocked FMA loops over
// 8 points per vector.
//
// Network (see meanfield.py): u = W1^T xs with xs = x^T * pre / sqrt(D) (the activation's inner
// factor folded in), h = post * f(u), out = w2 . h / H, loss = mean over points of (out - y)^2,
// SGD: W1 -= lr1 dW1, w2 -= lr2 dw2. Optionally, before every step, W1 += off1 and w2 += off2
// (the paper's every-step offset). A model whose weights turn NaN stays NaN forever: its later
// losses are NaN, written without computing them. Every model's numbers depend only on its own
// weights, rates, offsets and the data: never on the other models, the chunk or the threads.
//
// `train_deep` (below `train`) does the same for the deep mean-field MLP of resmlp.py, plain or
// residual, of any depth; `train`'s code is left as it was, so the paper MLP's numbers are too.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#if defined(__AVX512F__) && !defined(NNFRACTAL_MF_PORTABLE)
#include <immintrin.h>
#define NNFRACTAL_MF_AVX512 1
#endif

namespace {

constexpr int kLanes = 8;  // doubles per vector

// ---- one vector of 8 doubles -------------------------------------------------------------------
#ifdef NNFRACTAL_MF_AVX512
struct V { __m512d v; };
using Mask = __mmask8;
inline V vzero() { return {_mm512_setzero_pd()}; }
inline V vset(double a) { return {_mm512_set1_pd(a)}; }
inline V vload(const double* p) { return {_mm512_loadu_pd(p)}; }
inline void vstore(double* p, V a) { _mm512_storeu_pd(p, a.v); }
inline V operator+(V a, V b) { return {_mm512_add_pd(a.v, b.v)}; }
inline V operator-(V a, V b) { return {_mm512_sub_pd(a.v, b.v)}; }
inline V operator*(V a, V b) { return {_mm512_mul_pd(a.v, b.v)}; }
inline V fma(V a, V b, V c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }     // a * b + c
inline V keep(Mask m, V a) { return {_mm512_maskz_mov_pd(m, a.v)}; }         // a where m, else 0
inline Mask positive(V a) { return _mm512_cmp_pd_mask(a.v, _mm512_setzero_pd(), _CMP_GT_OQ); }
inline V select(Mask m, V a, V b) { return {_mm512_mask_blend_pd(m, b.v, a.v)}; }  // m ? a : b

// 2^(j/8), j = 0..7, as double-double (hi + lo), for exp's table lookup.
struct Exp2Table {
  __m512d hi, lo;
  Exp2Table() {
    alignas(64) double h[8], l[8];
    for (int j = 0; j < 8; ++j) {
      const long double v = std::exp2l(j / 8.0L);
      h[j] = static_cast<double>(v);
      l[j] = static_cast<double>(v - h[j]);
    }
    hi = _mm512_load_pd(h);
    lo = _mm512_load_pd(l);
  }
};
const Exp2Table kExp2;

// tanh to ~2 ulp, 8 lanes: tanh|x| = e / (e + 2) with e = expm1(2|x|), then x's sign. glibc's
// vector tanh (libmvec) took ~45 cycles per vector here, half of a training step.
// expm1(y) = 2^m T (1 + q) - 1 with y = (8m + j) ln2/8 + r, |r| <= ln2/16, T = 2^(j/8) from a
// register table (double-double), q = expm1(r) by its Taylor series to r^8 (relative error
// < 1e-16 for |r| <= ln2/16). s - 1 for s = 2^m T_hi is exact near 0 (Sterbenz), so small x keep
// their relative accuracy. 2|x| is clamped at 40 (tanh(20) rounds to 1); NaN passes through.
inline V vtanh(V a) {
  const __m512d ax = _mm512_abs_pd(a.v);
  const __m512d y = _mm512_min_pd(_mm512_set1_pd(40.0), _mm512_add_pd(ax, ax));
  const __m512d kf = _mm512_roundscale_pd(_mm512_mul_pd(y, _mm512_set1_pd(8.0 / M_LN2)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln2/8 in two parts: the high part has 21 trailing zero bits, so kf * hi is exact
  __m512d r = _mm512_fnmadd_pd(kf, _mm512_set1_pd(6.93147180369123816490e-01 / 8), y);
  r = _mm512_fnmadd_pd(kf, _mm512_set1_pd(1.90821492927058770002e-10 / 8), r);
  const __m512i j = _mm512_and_si512(_mm512_cvtpd_epi64(kf), _mm512_set1_epi64(7));
  const __m512d m = _mm512_roundscale_pd(_mm512_mul_pd(kf, _mm512_set1_pd(0.125)),
                                         _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512d p = _mm512_set1_pd(1.0 / 40320);          // q = r (1 + r/2 + r^2/6 + ... + r^7/8!)
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 5040));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 720));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 120));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 24));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 6));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.5));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
  const __m512d q = _mm512_mul_pd(p, r);
  const __m512d s_hi = _mm512_scalef_pd(_mm512_permutexvar_pd(j, kExp2.hi), m);
  const __m512d s_lo = _mm512_scalef_pd(_mm512_permutexvar_pd(j, kExp2.lo), m);
  // e = (s_hi - 1) + s_hi q + s_lo (1 + q)
  const __m512d small = _mm512_fmadd_pd(s_lo, q, s_lo);
  const __m512d e = _mm512_add_pd(_mm512_sub_pd(s_hi, _mm512_set1_pd(1.0)),
                                  _mm512_fmadd_pd(s_hi, q, small));
  const __m512d t = _mm512_div_pd(e, _mm512_add_pd(e, _mm512_set1_pd(2.0)));
  const __m512i sign = _mm512_and_si512(_mm512_castpd_si512(a.v), _mm512_set1_epi64(INT64_MIN));
  return {_mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(t), sign))};
}
// max(0, a) with a NaN passed through, as torch.relu does (MAXPD returns its second operand
// when either is NaN).
inline V vrelu(V a) { return {_mm512_max_pd(_mm512_setzero_pd(), a.v)}; }
inline double hsum(V a) { return _mm512_reduce_add_pd(a.v); }
inline bool any_nan(V a) { return _mm512_cmp_pd_mask(a.v, a.v, _CMP_UNORD_Q) != 0; }
#else
struct V { double v[kLanes]; };
using Mask = unsigned;
#define NNF_LANES(expr) { V r; for (int i = 0; i < kLanes; ++i) r.v[i] = (expr); return r; }
inline V vzero() NNF_LANES(0.0)
inline V vset(double a) NNF_LANES(a)
inline V vload(const double* p) NNF_LANES(p[i])
inline void vstore(double* p, V a) { for (int i = 0; i < kLanes; ++i) p[i] = a.v[i]; }
inline V operator+(V a, V b) NNF_LANES(a.v[i] + b.v[i])
inline V operator-(V a, V b) NNF_LANES(a.v[i] - b.v[i])
inline V operator*(V a, V b) NNF_LANES(a.v[i] * b.v[i])
inline V fma(V a, V b, V c) NNF_LANES(std::fma(a.v[i], b.v[i], c.v[i]))
inline V keep(Mask m, V a) NNF_LANES(((m >> i) & 1u) ? a.v[i] : 0.0)
inline Mask positive(V a) {
  Mask m = 0;
  for (int i = 0; i < kLanes; ++i) m |= (a.v[i] > 0.0 ? 1u : 0u) << i;
  return m;
}
inline V select(Mask m, V a, V b) NNF_LANES(((m >> i) & 1u) ? a.v[i] : b.v[i])
inline V vtanh(V a) NNF_LANES(std::tanh(a.v[i]))
inline V vrelu(V a) NNF_LANES(std::isnan(a.v[i]) ? a.v[i] : (a.v[i] > 0.0 ? a.v[i] : 0.0))
inline double hsum(V a) {
  double s = 0.0;
  for (int i = 0; i < kLanes; ++i) s += a.v[i];
  return s;
}
inline bool any_nan(V a) {
  for (int i = 0; i < kLanes; ++i) if (std::isnan(a.v[i])) return true;
  return false;
}
#undef NNF_LANES
#endif

inline Mask lanes_below(int n) {  // the first n lanes (n <= 8)
  return n >= kLanes ? Mask(0xFF) : Mask((1u << n) - 1u);
}

enum Activation : int { kTanh = 0, kRelu = 1, kLeaky = 2, kIdentity = 3 };

struct Act {
  int kind;
  double post;   // h = post * f(u)
  double slope;  // leaky ReLU's negative slope
  V apply(V u) const {
    switch (kind) {
      case kTanh: return post == 1.0 ? vtanh(u) : vset(post) * vtanh(u);
      case kRelu: return vset(post) * vrelu(u);
      case kLeaky: return vset(post) * select(positive(u), u, u * vset(slope));
      default: return u;
    }
  }
  // d loss / d u from g = d loss / d h, given h (as meanfield._activation_backward)
  V backward(V g, V h) const {
    switch (kind) {
      case kTanh: return g * (vset(1.0) - h * h);
      case kRelu: return keep(positive(h), g * vset(post));
      case kLeaky: return select(positive(h), g * vset(post), g * vset(post * slope));
      default: return g;
    }
  }
};

// The points one step sees: xs (D, npad) rows padded with zeros to npad (a multiple of 8), y
// (npad) likewise; n real points.
struct Points {
  const double* xs;
  const double* y;
  int n, npad;
};

// Loss of one model on `pts`; with `grads`, also d loss / d W1 (D*H, [k*H + j]) into gw1 and
// d loss / d w2 (H) into gw2, using gu (H * npad) as scratch.
template <int H, bool kGrads>
double pass(const double* w1, const double* w2, const Points& pts, const Act& act,
            double* gu, double* gw1, double* gw2) {
  constexpr int D = H;
  const double inv_h = 1.0 / H;                 // the readout's mean-field scale
  const double dscale = 2.0 / pts.n;            // d mean((out - y)^2) / d out
  V loss_acc = vzero();
  V gw2_acc[H];
  for (int j = 0; j < H; ++j) gw2_acc[j] = vzero();
  for (int v = 0; v < pts.npad; v += kLanes) {
    const Mask real = lanes_below(pts.n - v);
    V h[H];
    for (int j = 0; j < H; ++j) h[j] = vzero();
    for (int k = 0; k < D; ++k) {
      const V xk = vload(pts.xs + k * pts.npad + v);
      for (int j = 0; j < H; ++j) h[j] = fma(vset(w1[k * H + j]), xk, h[j]);
    }
    V out = vzero();
    for (int j = 0; j < H; ++j) {
      // padding lanes to 0 (their u is 0, but inf weights would make it NaN)
      h[j] = keep(real, act.apply(h[j]));
      out = fma(h[j], vset(w2[j]), out);
    }
    const V resid = keep(real, out * vset(inv_h) - vload(pts.y + v));
    loss_acc = fma(resid, resid, loss_acc);
    if (kGrads) {
      const V dout = resid * vset(dscale);
      const V dh = dout * vset(inv_h);
      for (int j = 0; j < H; ++j) {
        gw2_acc[j] = fma(h[j], dout, gw2_acc[j]);
        vstore(gu + j * pts.npad + v, keep(real, act.backward(dh * vset(w2[j]), h[j])));
      }
    }
  }
  if (kGrads) {
    for (int j = 0; j < H; ++j) gw2[j] = hsum(gw2_acc[j]) * inv_h;
    // dW1[k][j] = sum over points of xs[k] * gu[j], in 4 x 4 register blocks
    static_assert(H % 4 == 0, "width must be a multiple of 4");
    for (int k0 = 0; k0 < D; k0 += 4) {
      for (int j0 = 0; j0 < H; j0 += 4) {
        V acc[4][4];
        for (int a = 0; a < 4; ++a)
          for (int b = 0; b < 4; ++b) acc[a][b] = vzero();
        for (int v = 0; v < pts.npad; v += kLanes) {
          V x[4], g[4];
          for (int a = 0; a < 4; ++a) x[a] = vload(pts.xs + (k0 + a) * pts.npad + v);
          for (int b = 0; b < 4; ++b) g[b] = vload(gu + (j0 + b) * pts.npad + v);
          for (int a = 0; a < 4; ++a)
            for (int b = 0; b < 4; ++b) acc[a][b] = fma(x[a], g[b], acc[a][b]);
        }
        for (int a = 0; a < 4; ++a)
          for (int b = 0; b < 4; ++b) gw1[(k0 + a) * H + j0 + b] = hsum(acc[a][b]);
      }
    }
  }
  return hsum(loss_acc) / pts.n;
}

struct Run {
  int64_t steps;
  Points full;                 // all training points
  const int64_t* batches;      // (steps, batch) point indices, or null: full batch
  int batch;
  bool full_loss;              // record the full-batch loss (minibatch runs)
  bool every_step_offset;
  Act act;
};

// Train one model: w1 (D*H) and w2 (H) in place, losses (steps) written.
template <int H>
void train_model(double* w1, double* w2, double lr1, double lr2, double off1, double off2,
                 const Run& run, double* losses, std::vector<double>& scratch) {
  constexpr int D = H;
  const int bpad = run.batches ? (run.batch + kLanes - 1) / kLanes * kLanes : 0;
  const int npad = std::max(run.full.npad, bpad);
  scratch.assign(static_cast<size_t>(H) * npad + D * H + H + (D + 1) * bpad, 0.0);
  double* gu = scratch.data();
  double* gw1 = gu + static_cast<size_t>(H) * npad;
  double* gw2 = gw1 + D * H;
  double* xb = gw2 + H;                   // the step's minibatch, (D, bpad), zero padded
  double* yb = xb + D * bpad;
  Points batch{xb, yb, run.batch, bpad};
  for (int64_t t = 0; t < run.steps; ++t) {
    if (run.every_step_offset) {
      for (int i = 0; i < D * H; ++i) w1[i] += off1;
      for (int j = 0; j < H; ++j) w2[j] += off2;
    }
    double loss;
    if (run.batches) {
      const int64_t* idx = run.batches + t * run.batch;
      for (int i = 0; i < run.batch; ++i) {
        for (int k = 0; k < D; ++k) xb[k * bpad + i] = run.full.xs[k * run.full.npad + idx[i]];
        yb[i] = run.full.y[idx[i]];
      }
      loss = pass<H, true>(w1, w2, batch, run.act, gu, gw1, gw2);
      if (run.full_loss) loss = pass<H, false>(w1, w2, run.full, run.act, gu, nullptr, nullptr);
    } else {
      loss = pass<H, true>(w1, w2, run.full, run.act, gu, gw1, gw2);
    }
    losses[t] = loss;
    bool nan = false;
    for (int i = 0; i < D * H; ++i) {
      w1[i] -= lr1 * gw1[i];
      nan |= std::isnan(w1[i]);
    }
    for (int j = 0; j < H; ++j) {
      w2[j] -= lr2 * gw2[j];
      nan |= std::isnan(w2[j]);
    }
    if (nan) {  // NaN weights stay NaN: every later loss is NaN
      for (int64_t s = t + 1; s < run.steps; ++s) losses[s] = std::numeric_limits<double>::quiet_NaN();
      return;
    }
  }
}

// Denormals flushed to zero and read as zero (MXCSR's FTZ and DAZ bits), or both off, while a
// thread trains, restored afterwards: the control register is per thread (torch.set_flush_denormal
// sets only its caller's, and OpenMP's threads keep whatever they started with), and a model's
// numbers must not depend on which thread trains it. Flushing changes only values below 2.2e-308
// (tests/test_mlp_kernel.py: the paper presets' curves are bit-identical either way).
struct DenormalMode {
#if defined(__x86_64__) || defined(__i386__)
  static constexpr unsigned kFtzDaz = 0x8040u;
  unsigned saved = _mm_getcsr();
  explicit DenormalMode(bool flush) { _mm_setcsr(flush ? saved | kFtzDaz : saved & ~kFtzDaz); }
  ~DenormalMode() { _mm_setcsr(saved); }
#else
  explicit DenormalMode(bool) {}
#endif
};

void check(const at::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kDouble && t.is_contiguous() &&
                  t.dim() == dim,
              name, " must be a contiguous float64 CPU tensor with ", dim, " dimensions");
}

// w1 (M, D, H) and w2 (M, H) are trained in place; returns the losses (M, steps), each recorded
// before its step's update. lr1, lr2, off1, off2: (M,). xs: (D, npad) the scaled, transposed,
// zero-padded inputs; y (npad); n the number of real points; batches (steps, B) int64 or empty;
// flush_denormals: FTZ and DAZ on (else off) in every thread that trains.
at::Tensor train(at::Tensor w1, at::Tensor w2, at::Tensor lr1, at::Tensor lr2, at::Tensor off1,
                 at::Tensor off2, at::Tensor xs, at::Tensor y, int64_t n, at::Tensor batches,
                 bool full_loss, bool every_step_offset, int64_t steps, int64_t activation,
                 double post, double slope, bool flush_denormals) {
  check(w1, "w1", 3);
  check(w2, "w2", 2);
  check(xs, "xs", 2);
  check(y, "y", 1);
  for (auto* t : {&lr1, &lr2, &off1, &off2}) check(*t, "rates and offsets", 1);
  const int64_t m = w1.size(0), h = w1.size(2);
  TORCH_CHECK(w1.size(1) == h && w2.size(1) == h && xs.size(0) == h, "the kernel needs D == H");
  TORCH_CHECK(xs.size(1) % kLanes == 0 && y.size(0) == xs.size(1) && n <= xs.size(1) && n >= 1,
              "xs must be padded to a multiple of 8 points");
  Run run{steps, Points{xs.data_ptr<double>(), y.data_ptr<double>(), int(n), int(xs.size(1))},
          nullptr, 0, full_loss, every_step_offset, Act{int(activation), post, slope}};
  if (batches.numel() > 0) {
    TORCH_CHECK(batches.scalar_type() == at::kLong && batches.is_contiguous() && batches.dim() == 2 &&
                    batches.size(0) >= steps, "batches must be (steps, B) int64");
    run.batches = batches.data_ptr<int64_t>();
    run.batch = int(batches.size(1));
  }
  auto losses = at::empty({m, steps}, w1.options());
  double* pw1 = w1.data_ptr<double>();
  double* pw2 = w2.data_ptr<double>();
  double* pl = losses.data_ptr<double>();
  const double *plr1 = lr1.data_ptr<double>(), *plr2 = lr2.data_ptr<double>();
  const double *poff1 = off1.data_ptr<double>(), *poff2 = off2.data_ptr<double>();
  auto model = [&](int64_t i, std::vector<double>& scratch) {
    double* a = pw1 + i * h * h;
    double* b = pw2 + i * h;
    double* l = pl + i * steps;
    if (h == 16) train_model<16>(a, b, plr1[i], plr2[i], poff1[i], poff2[i], run, l, scratch);
    else if (h == 8) train_model<8>(a, b, plr1[i], plr2[i], poff1[i], poff2[i], run, l, scratch);
    else train_model<32>(a, b, plr1[i], plr2[i], poff1[i], poff2[i], run, l, scratch);
  };
  TORCH_CHECK(h == 8 || h == 16 || h == 32, "the kernel is built for widths 8, 16 and 32");
  // One task per thread; each takes the next model when done with one, so a thread on a busy
  // core (or with slow models) takes fewer. at::parallel_for runs on torch's OpenMP threads
  // (fused_bn.load_locked builds with -fopenmp; without it, it runs serially in this thread).
  std::atomic<int64_t> next{0};
  const int64_t tasks = std::min<int64_t>(m, at::get_num_threads());
  at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
    DenormalMode denormals(flush_denormals);
    std::vector<double> scratch;
    for (int64_t task = t0; task < t1; ++task)
      for (int64_t i = next++; i < m; i = next++) model(i, scratch);
  });
  return losses;
}

// ---- the deep mean-field MLP, plain or residual (resmlp.py) ------------------------------------
//
// Network: h_1 = act(W_0^T xs) (the stem, xs as above); the L - 2 hidden layers l = 1..L-2 give
// A_l = act(s W_l^T h_l) with s = pre / sqrt(H), and h_{l+1} = h_l + a A_l (residual) or A_l
// (plain); out = w^T h_{L-1} / H. One step runs layer by layer over all the step's points, each
// layer's products register-blocked as above, and keeps every h_l (and, residual, every A_l) for
// the backward pass: about 1 MB per model at H = 16, L = 16 and 272 points, which stays in L2.
// The weights of one model are one flat array: W_0 (D*H), W_1..W_{L-2} (H*H each, [k*H + j] the
// weight from input k to unit j), w (H).

struct Deep {
  int depth;       // weight matrices, L >= 2
  bool residual;
  double branch;   // a: the residual branch's scale
  double scale;    // s: the hidden layers' pre / sqrt(H)
  Act act;
};

template <int H>
constexpr size_t deep_size(int depth) {
  return static_cast<size_t>(H) * H * (depth - 1) + H;
}

// u[j] = sum_k w[k*H + j] in[k] for the 8 points at v; in: H rows of stride `stride`.
template <int H>
inline void deep_forward_vector(const double* w, const double* in, int stride, int v, V* u) {
  for (int j = 0; j < H; ++j) u[j] = vzero();
  for (int k = 0; k < H; ++k) {
    const V x = vload(in + k * stride + v);
    for (int j = 0; j < H; ++j) u[j] = fma(vset(w[k * H + j]), x, u[j]);
  }
}

// out[k*H + j] = scale * sum over the npad points of a[k] b[j] (rows of strides sa and sb), in
// 4 x 4 register blocks.
template <int H>
void deep_weight_grad(const double* a, int sa, const double* b, int sb, int npad, double scale,
                      double* out) {
  static_assert(H % 4 == 0, "width must be a multiple of 4");
  for (int k0 = 0; k0 < H; k0 += 4) {
    for (int j0 = 0; j0 < H; j0 += 4) {
      V acc[4][4];
      for (int p = 0; p < 4; ++p)
        for (int q = 0; q < 4; ++q) acc[p][q] = vzero();
      for (int v = 0; v < npad; v += kLanes) {
        V x[4], g[4];
        for (int p = 0; p < 4; ++p) x[p] = vload(a + (k0 + p) * sa + v);
        for (int q = 0; q < 4; ++q) g[q] = vload(b + (j0 + q) * sb + v);
        for (int p = 0; p < 4; ++p)
          for (int q = 0; q < 4; ++q) acc[p][q] = fma(x[p], g[q], acc[p][q]);
      }
      for (int p = 0; p < 4; ++p)
        for (int q = 0; q < 4; ++q) out[(k0 + p) * H + j0 + q] = hsum(acc[p][q]) * scale;
    }
  }
}

// The buffers of one model's step: h_1..h_{L-1}, A_1..A_{L-2} (residual), the gradient with
// respect to the current hidden layer and the pre-activation gradients, each H rows of `stride`.
struct DeepBuffers {
  double* hs;
  double* as;
  double* g;
  double* du;
  int stride;
};

// The forward pass of one model on `pts` into the buffers; returns the loss and, with kGrads,
// writes d loss / d weights into grad (deep_size).
template <int H, bool kGrads>
double deep_pass(const double* w, const Points& pts, const Deep& net, const DeepBuffers& buf,
                 double* grad) {
  const int L = net.depth, S = buf.stride;
  const size_t plane = static_cast<size_t>(H) * S;
  auto h_of = [&](int l) { return buf.hs + (l - 1) * plane; };                      // h_l
  auto a_of = [&](int l) { return net.residual ? buf.as + (l - 1) * plane : h_of(l + 1); };
  auto w_of = [&](int l) { return w + static_cast<size_t>(l) * H * H; };            // W_l
  const V s = vset(net.scale), a = vset(net.branch);
  V u[H];
  for (int v = 0; v < pts.npad; v += kLanes) {
    const Mask real = lanes_below(pts.n - v);
    deep_forward_vector<H>(w, pts.xs, pts.npad, v, u);
    // padding lanes to 0 (their u is 0, but inf weights would make it NaN)
    for (int j = 0; j < H; ++j) vstore(h_of(1) + j * S + v, keep(real, net.act.apply(u[j])));
  }
  for (int l = 1; l <= L - 2; ++l) {
    const double* in = h_of(l);
    double* act_out = a_of(l);
    double* next = h_of(l + 1);
    for (int v = 0; v < pts.npad; v += kLanes) {
      const Mask real = lanes_below(pts.n - v);
      deep_forward_vector<H>(w_of(l), in, S, v, u);
      for (int j = 0; j < H; ++j) {
        const V act = keep(real, net.act.apply(u[j] * s));
        if (net.residual) {
          vstore(act_out + j * S + v, act);
          vstore(next + j * S + v, fma(a, act, vload(in + j * S + v)));
        } else {
          vstore(next + j * S + v, act);
        }
      }
    }
  }
  // The readout, the loss and d loss / d h_{L-1}.
  const double* readout = w_of(L - 1);
  const double* last = h_of(L - 1);
  const double inv_h = 1.0 / H;
  const V dscale = vset(2.0 / pts.n);
  V loss_acc = vzero();
  V gout[H];
  for (int j = 0; j < H; ++j) gout[j] = vzero();
  for (int v = 0; v < pts.npad; v += kLanes) {
    const Mask real = lanes_below(pts.n - v);
    V out = vzero();
    for (int j = 0; j < H; ++j) out = fma(vload(last + j * S + v), vset(readout[j]), out);
    const V resid = keep(real, out * vset(inv_h) - vload(pts.y + v));
    loss_acc = fma(resid, resid, loss_acc);
    if (kGrads) {
      const V dout = resid * dscale;
      const V dh = dout * vset(inv_h);
      for (int j = 0; j < H; ++j) {
        gout[j] = fma(vload(last + j * S + v), dout, gout[j]);
        vstore(buf.g + j * S + v, dh * vset(readout[j]));
      }
    }
  }
  if (kGrads) {
    double* g_readout = grad + static_cast<size_t>(L - 1) * H * H;
    for (int j = 0; j < H; ++j) g_readout[j] = hsum(gout[j]) * inv_h;
    for (int l = L - 2; l >= 1; --l) {
      const double* act_out = a_of(l);
      const double* wl = w_of(l);
      for (int v = 0; v < pts.npad; v += kLanes) {
        const Mask real = lanes_below(pts.n - v);
        for (int j = 0; j < H; ++j) {
          V d = net.act.backward(vload(buf.g + j * S + v), vload(act_out + j * S + v));
          vstore(buf.du + j * S + v, keep(real, net.residual ? d * a : d));
        }
        // d loss / d h_l = (residual: d loss / d h_{l+1}) + s W_l du
        for (int k = 0; k < H; ++k) u[k] = vzero();
        for (int j = 0; j < H; ++j) {
          const V d = vload(buf.du + j * S + v);
          for (int k = 0; k < H; ++k) u[k] = fma(vset(wl[k * H + j]), d, u[k]);
        }
        for (int k = 0; k < H; ++k) {
          double* gk = buf.g + k * S + v;
          vstore(gk, net.residual ? fma(s, u[k], vload(gk)) : u[k] * s);
        }
      }
      deep_weight_grad<H>(h_of(l), S, buf.du, S, pts.npad, net.scale,
                          grad + static_cast<size_t>(l) * H * H);
    }
    for (int v = 0; v < pts.npad; v += kLanes) {
      const Mask real = lanes_below(pts.n - v);
      for (int j = 0; j < H; ++j)
        vstore(buf.du + j * S + v,
               keep(real, net.act.backward(vload(buf.g + j * S + v), vload(h_of(1) + j * S + v))));
    }
    deep_weight_grad<H>(pts.xs, pts.npad, buf.du, S, pts.npad, 1.0, grad);
  }
  return hsum(loss_acc) / pts.n;
}

// Train one model: w (deep_size) in place, losses (steps) written. lr and off: one per layer.
template <int H>
void train_deep_model(double* w, const double* lr, const double* off, const Run& run,
                      const Deep& net, double* losses, std::vector<double>& scratch) {
  constexpr int D = H;
  const int L = net.depth;
  const size_t size = deep_size<H>(L);
  const int bpad = run.batches ? (run.batch + kLanes - 1) / kLanes * kLanes : 0;
  const int stride = std::max(run.full.npad, bpad);
  const size_t plane = static_cast<size_t>(H) * stride;
  const size_t planes = (L - 1) + (net.residual ? L - 2 : 0) + 2;
  scratch.assign(planes * plane + size + (D + 1) * static_cast<size_t>(bpad), 0.0);
  DeepBuffers buf{scratch.data(), nullptr, nullptr, nullptr, stride};
  buf.as = buf.hs + (L - 1) * plane;
  buf.g = buf.as + (net.residual ? L - 2 : 0) * plane;
  buf.du = buf.g + plane;
  double* grad = buf.du + plane;
  double* xb = grad + size;               // the step's minibatch, (D, bpad), zero padded
  double* yb = xb + D * bpad;
  Points batch{xb, yb, run.batch, bpad};
  // layer i's weights are [start(i), start(i + 1))
  auto start = [&](int i) { return std::min(size, static_cast<size_t>(i) * H * H); };
  for (int64_t t = 0; t < run.steps; ++t) {
    if (run.every_step_offset) {
      for (int i = 0; i < L; ++i)
        for (size_t p = start(i); p < start(i + 1); ++p) w[p] += off[i];
    }
    double loss;
    if (run.batches) {
      const int64_t* idx = run.batches + t * run.batch;
      for (int i = 0; i < run.batch; ++i) {
        for (int k = 0; k < D; ++k) xb[k * bpad + i] = run.full.xs[k * run.full.npad + idx[i]];
        yb[i] = run.full.y[idx[i]];
      }
      loss = deep_pass<H, true>(w, batch, net, buf, grad);
      if (run.full_loss) loss = deep_pass<H, false>(w, run.full, net, buf, nullptr);
    } else {
      loss = deep_pass<H, true>(w, run.full, net, buf, grad);
    }
    losses[t] = loss;
    bool nan = false;
    for (int i = 0; i < L; ++i) {
      for (size_t p = start(i); p < start(i + 1); ++p) {
        w[p] -= lr[i] * grad[p];
        nan |= std::isnan(w[p]);
      }
    }
    if (nan) {  // NaN weights stay NaN: every later loss is NaN
      for (int64_t s = t + 1; s < run.steps; ++s) losses[s] = std::numeric_limits<double>::quiet_NaN();
      return;
    }
  }
}

// w (M, deep_size) is trained in place; returns the losses (M, steps), each recorded before its
// step's update. lr and off: (M, depth), one per layer; xs, y, n, batches as `train`; residual,
// branch (a) and scale (s) as `Deep`.
at::Tensor train_deep(at::Tensor w, at::Tensor lr, at::Tensor off, at::Tensor xs, at::Tensor y,
                      int64_t n, at::Tensor batches, bool full_loss, bool every_step_offset,
                      int64_t steps, int64_t depth, bool residual, double branch, double scale,
                      int64_t activation, double post, double slope, bool flush_denormals) {
  check(w, "w", 2);
  check(lr, "lr", 2);
  check(off, "off", 2);
  check(xs, "xs", 2);
  check(y, "y", 1);
  const int64_t m = w.size(0), h = xs.size(0);
  TORCH_CHECK(h == 8 || h == 16 || h == 32, "the kernel is built for widths 8, 16 and 32");
  TORCH_CHECK(depth >= 2 && w.size(1) == h * h * (depth - 1) + h,
              "w must hold (depth - 1) H x H matrices and the readout");
  TORCH_CHECK(lr.size(0) == m && lr.size(1) == depth && off.size(0) == m && off.size(1) == depth,
              "lr and off must be (M, depth)");
  TORCH_CHECK(xs.size(1) % kLanes == 0 && y.size(0) == xs.size(1) && n <= xs.size(1) && n >= 1,
              "xs must be padded to a multiple of 8 points");
  Run run{steps, Points{xs.data_ptr<double>(), y.data_ptr<double>(), int(n), int(xs.size(1))},
          nullptr, 0, full_loss, every_step_offset, Act{int(activation), post, slope}};
  if (batches.numel() > 0) {
    TORCH_CHECK(batches.scalar_type() == at::kLong && batches.is_contiguous() && batches.dim() == 2 &&
                    batches.size(0) >= steps, "batches must be (steps, B) int64");
    run.batches = batches.data_ptr<int64_t>();
    run.batch = int(batches.size(1));
  }
  const Deep net{int(depth), residual, branch, scale, run.act};
  auto losses = at::empty({m, steps}, w.options());
  double* pw = w.data_ptr<double>();
  double* pl = losses.data_ptr<double>();
  const double *plr = lr.data_ptr<double>(), *poff = off.data_ptr<double>();
  const int64_t size = w.size(1);
  auto model = [&](int64_t i, std::vector<double>& scratch) {
    double* wi = pw + i * size;
    const double* lri = plr + i * depth;
    const double* offi = poff + i * depth;
    double* l = pl + i * steps;
    if (h == 16) train_deep_model<16>(wi, lri, offi, run, net, l, scratch);
    else if (h == 8) train_deep_model<8>(wi, lri, offi, run, net, l, scratch);
    else train_deep_model<32>(wi, lri, offi, run, net, l, scratch);
  };
  std::atomic<int64_t> next{0};   // as `train`: each thread takes the next model when done
  const int64_t tasks = std::min<int64_t>(m, at::get_num_threads());
  at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
    DenormalMode denormals(flush_denormals);
    std::vector<double> scratch;
    for (int64_t task = t0; task < t1; ++task)
      for (int64_t i = next++; i < m; i = next++) model(i, scratch);
  });
  return losses;
}

// The kernel's tanh, elementwise (for the tests): x contiguous float64.
at::Tensor tanh_(at::Tensor x) {
  check(x, "x", 1);
  auto out = at::empty_like(x);
  const double* px = x.data_ptr<double>();
  double* po = out.data_ptr<double>();
  const int64_t n = x.numel();
  alignas(64) double buf[kLanes];
  for (int64_t i = 0; i < n; i += kLanes) {
    const int64_t k = std::min<int64_t>(kLanes, n - i);
    for (int64_t l = 0; l < kLanes; ++l) buf[l] = l < k ? px[i + l] : 0.0;
    vstore(buf, vtanh(vload(buf)));
    for (int64_t l = 0; l < k; ++l) po[i + l] = buf[l];
  }
  return out;
}

// The threads that enter the kernel's parallel_for of `tasks` tasks (for the tests): the caller's
// torch threads, at most `tasks`; 1 in an extension built without OpenMP.
int64_t team_size(int64_t tasks) {
  std::atomic<int64_t> team{0};
  at::parallel_for(0, tasks, 1, [&](int64_t, int64_t) { ++team; });
  return team.load();
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("train", &train, "train mean-field MLPs model by model through all steps (CPU, float64)",
        py::call_guard<py::gil_scoped_release>());
  m.def("train_deep", &train_deep,
        "train deep mean-field MLPs, plain or residual, model by model through all steps",
        py::call_guard<py::gil_scoped_release>());
  m.def("tanh", &tanh_, "the kernel's tanh, elementwise (float64, 1-d)");
#ifdef NNFRACTAL_MF_AVX512
  m.attr("simd") = "avx512";
#else
  m.attr("simd") = "portable";
#endif
  m.def("team_size", &team_size, "threads entering the kernel's parallel_for of this many tasks");
}
