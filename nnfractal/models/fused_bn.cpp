// BatchNorm (batch statistics) + optional residual add + optional ReLU, forward and backward,
// for channels_last tensors on the CPU, in two passes over memory each way.
//
// ATen runs BatchNorm, the residual add and the ReLU as separate kernels: 5 (plain) or 8
// (residual) passes over the activation forward and 8 backward. Fused, the forward reads x once
// for the statistics and once more to write y; the backward reads the gradient and x once for
// the two per-channel sums and once more to write dx. These layers do no products worth
// counting, yet took a third of a ResNet training step on the CPU: all of it memory traffic.
//
// Layout: x is (B, C, H, W) in channels_last, i.e. R = B*H*W rows of C contiguous values.
// Per-channel sums are accumulated in scalar_t over blocks of kBlock rows (one vector width, so
// the loops vectorize), in double over a contiguous range of rows per task, and over tasks in
// task order. The tasks depend on R and the thread count only, never on C: each channel's
// numbers are the same whatever other channels (other models) share the tensor.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

constexpr int64_t kGrain = 256;  // rows per parallel task, at least
constexpr int64_t kBlock = 16;   // rows summed in scalar_t before the double accumulators

void check_cl(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 4 && t.is_contiguous(at::MemoryFormat::ChannelsLast),
              name, " must be a 4-d channels_last tensor");
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
}

// s1[c], s2[c] = per-channel sums over all R rows of what row_sums(r, a, b) adds to a[c], b[c].
template <typename scalar_t, typename RowSums>
void channel_sums(int64_t R, int64_t C, double* s1, double* s2, const RowSums& row_sums) {
  const int64_t nt = at::get_num_threads();
  const int64_t chunk = std::max<int64_t>(kGrain, (R + nt - 1) / nt);
  const int64_t ntask = (R + chunk - 1) / chunk;
  std::vector<double> part(static_cast<size_t>(ntask) * 2 * C, 0.0);
  at::parallel_for(0, ntask, 1, [&](int64_t t0, int64_t t1) {
    std::vector<scalar_t> blk(2 * C);
    scalar_t* a = blk.data();
    scalar_t* b = a + C;
    for (int64_t t = t0; t < t1; ++t) {
      double* pa = part.data() + t * 2 * C;
      double* pb = pa + C;
      const int64_t r1 = std::min(R, (t + 1) * chunk);
      for (int64_t r = t * chunk; r < r1; r += kBlock) {
        std::fill(blk.begin(), blk.end(), scalar_t(0));
        for (int64_t q = r; q < std::min(r1, r + kBlock); ++q) row_sums(q, a, b);
        for (int64_t c = 0; c < C; ++c) { pa[c] += a[c]; pb[c] += b[c]; }
      }
    }
  });
  std::fill(s1, s1 + C, 0.0);
  std::fill(s2, s2 + C, 0.0);
  for (int64_t t = 0; t < ntask; ++t)
    for (int64_t c = 0; c < C; ++c) {
      s1[c] += part[t * 2 * C + c];
      s2[c] += part[t * 2 * C + C + c];
    }
}

// The normalisation as a per-channel affine map, y = x * scale + shift. One function, so that the
// backward recomputes the forward's ReLU mask bit for bit.
template <typename scalar_t>
void affine(const scalar_t* gamma, const scalar_t* beta, const double* mean, const double* invstd,
            int64_t C, scalar_t* scale, scalar_t* shift) {
  for (int64_t c = 0; c < C; ++c) {
    scale[c] = static_cast<scalar_t>(gamma[c] * invstd[c]);
    shift[c] = static_cast<scalar_t>(beta[c] - mean[c] * gamma[c] * invstd[c]);
  }
}

template <typename scalar_t>
void forward_kernel(const scalar_t* x, const scalar_t* gamma, const scalar_t* beta,
                    const scalar_t* res, bool relu, double eps, int64_t R, int64_t C,
                    scalar_t* y, double* mean, double* invstd) {
  // Shifted by the first row, so that E[v^2] - E[v]^2 does not cancel when |mean| >> std.
  std::vector<double> s1(C), s2(C);
  channel_sums<scalar_t>(R, C, s1.data(), s2.data(), [&](int64_t r, scalar_t* a, scalar_t* b) {
    const scalar_t* xr = x + r * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const scalar_t v = xr[c] - x[c];
      a[c] += v;
      b[c] += v * v;
    }
  });
  for (int64_t c = 0; c < C; ++c) {
    const double d = s1[c] / R;
    mean[c] = x[c] + d;
    invstd[c] = 1.0 / std::sqrt(std::max(0.0, s2[c] / R - d * d) + eps);
  }
  std::vector<scalar_t> scale(C), shift(C);
  affine(gamma, beta, mean, invstd, C, scale.data(), shift.data());
  const scalar_t* sc = scale.data();
  const scalar_t* sh = shift.data();
  const scalar_t lo = relu ? scalar_t(0) : -INFINITY;
  at::parallel_for(0, R, kGrain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const scalar_t* xr = x + r * C;
      scalar_t* yr = y + r * C;
      if (res) {
        const scalar_t* rr = res + r * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t v = xr[c] * sc[c] + sh[c] + rr[c];
          yr[c] = v < lo ? lo : v;        // NaN stays NaN, as in torch.relu
        }
      } else {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t v = xr[c] * sc[c] + sh[c];
          yr[c] = v < lo ? lo : v;
        }
      }
    }
  });
}

// gm is the gradient behind the ReLU: grad where y > 0, else 0 (as torch's threshold_backward).
// Without a residual the mask is recomputed from x (mask_x), so y is never read; with one, y is
// read once and gm, which is also the gradient reaching the shortcut, is written to dres and
// read back for dx. dx = kg * gm + kx * x + k0 per channel: the usual formula, expanded.
template <typename scalar_t>
void backward_kernel(const scalar_t* g, const scalar_t* x, const scalar_t* y, const scalar_t* gamma,
                     const scalar_t* beta, const double* mean, const double* invstd, bool relu,
                     int64_t R, int64_t C, scalar_t* dx, scalar_t* dgamma, scalar_t* dbeta,
                     scalar_t* dres) {
  std::vector<scalar_t> scale(C), shift(C), mean_r(C);
  affine(gamma, beta, mean, invstd, C, scale.data(), shift.data());
  for (int64_t c = 0; c < C; ++c) mean_r[c] = static_cast<scalar_t>(mean[c]);
  const scalar_t* sc = scale.data();
  const scalar_t* sh = shift.data();
  const scalar_t* mr = mean_r.data();   // x is centred before the products are summed
  const bool mask_x = relu && y == nullptr;
  std::vector<double> sg(C), sgx(C);
  channel_sums<scalar_t>(R, C, sg.data(), sgx.data(), [&](int64_t r, scalar_t* a, scalar_t* b) {
    const scalar_t* gr = g + r * C;
    const scalar_t* xr = x + r * C;
    if (y) {
      const scalar_t* yr = y + r * C;
      scalar_t* dr = dres + r * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t gm = yr[c] > 0 ? gr[c] : scalar_t(0);
        dr[c] = gm;
        a[c] += gm;
        b[c] += gm * (xr[c] - mr[c]);
      }
    } else if (mask_x) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t gm = xr[c] * sc[c] + sh[c] > 0 ? gr[c] : scalar_t(0);
        a[c] += gm;
        b[c] += gm * (xr[c] - mr[c]);
      }
    } else {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        a[c] += gr[c];
        b[c] += gr[c] * (xr[c] - mr[c]);
      }
    }
  });
  std::vector<scalar_t> kg(C), kx(C), k0(C);
  for (int64_t c = 0; c < C; ++c) {
    const double dg = (sgx[c] - (mean[c] - mr[c]) * sg[c]) * invstd[c];   // sum(gm * xhat)
    dgamma[c] = static_cast<scalar_t>(dg);
    dbeta[c] = static_cast<scalar_t>(sg[c]);
    const double a = gamma[c] * invstd[c];
    const double bx = -a * invstd[c] * dg / R;
    kg[c] = static_cast<scalar_t>(a);
    kx[c] = static_cast<scalar_t>(bx);
    k0[c] = static_cast<scalar_t>(-a * sg[c] / R - bx * mean[c]);
  }
  const scalar_t* ka = kg.data();
  const scalar_t* kb = kx.data();
  const scalar_t* kz = k0.data();
  const scalar_t* src = y ? dres : g;
  at::parallel_for(0, R, kGrain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const scalar_t* gr = src + r * C;
      const scalar_t* xr = x + r * C;
      scalar_t* o = dx + r * C;
      if (mask_x) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t gm = xr[c] * sc[c] + sh[c] > 0 ? gr[c] : scalar_t(0);
          o[c] = ka[c] * gm + kb[c] * xr[c] + kz[c];
        }
      } else {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) o[c] = ka[c] * gr[c] + kb[c] * xr[c] + kz[c];
      }
    }
  });
}

}  // namespace

// (y, mean, invstd): y = relu?(gamma * (x - mean) * invstd + beta [+ residual]), biased variance.
std::vector<at::Tensor> bn_act_forward(const at::Tensor& x, const at::Tensor& gamma,
                                       const at::Tensor& beta, const c10::optional<at::Tensor>& residual,
                                       bool relu, double eps) {
  check_cl(x, "x");
  const int64_t C = x.size(1), R = x.numel() / C;
  TORCH_CHECK(gamma.is_contiguous() && beta.is_contiguous() && gamma.numel() == C && beta.numel() == C,
              "gamma and beta must be contiguous with one value per channel");
  const bool has_res = residual.has_value() && residual->defined();
  if (has_res) {
    check_cl(*residual, "residual");
    TORCH_CHECK(residual->sizes() == x.sizes() && residual->scalar_type() == x.scalar_type(),
                "residual must be like x");
  }
  auto y = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  auto mean = at::empty({C}, x.options().dtype(at::kDouble));
  auto invstd = at::empty({C}, x.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bn_act_forward", [&] {
    forward_kernel<scalar_t>(x.data_ptr<scalar_t>(), gamma.data_ptr<scalar_t>(), beta.data_ptr<scalar_t>(),
                             has_res ? residual->data_ptr<scalar_t>() : nullptr, relu, eps, R, C,
                             y.data_ptr<scalar_t>(), mean.data_ptr<double>(), invstd.data_ptr<double>());
  });
  return {y, mean, invstd};
}

// (dx, dgamma, dbeta, dresidual); y is given only for a ReLU after a residual add, and only then
// is dresidual (the masked gradient) returned.
std::vector<at::Tensor> bn_act_backward(const at::Tensor& grad, const at::Tensor& x,
                                        const c10::optional<at::Tensor>& y_opt,
                                        const at::Tensor& gamma, const at::Tensor& beta,
                                        const at::Tensor& mean, const at::Tensor& invstd, bool relu) {
  check_cl(x, "x");
  const bool has_y = y_opt.has_value() && y_opt->defined();
  TORCH_CHECK(!has_y || relu, "y is only needed for the ReLU's mask");
  auto g = grad.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t C = x.size(1), R = x.numel() / C;
  auto dx = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  auto dres = has_y ? at::empty_like(x, at::MemoryFormat::ChannelsLast) : at::Tensor();
  auto dgamma = at::empty({C}, gamma.options());
  auto dbeta = at::empty({C}, gamma.options());
  at::Tensor y = has_y ? y_opt->contiguous(at::MemoryFormat::ChannelsLast) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bn_act_backward", [&] {
    backward_kernel<scalar_t>(g.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                              has_y ? y.data_ptr<scalar_t>() : nullptr, gamma.data_ptr<scalar_t>(),
                              beta.data_ptr<scalar_t>(), mean.data_ptr<double>(), invstd.data_ptr<double>(),
                              relu, R, C, dx.data_ptr<scalar_t>(), dgamma.data_ptr<scalar_t>(),
                              dbeta.data_ptr<scalar_t>(), has_y ? dres.data_ptr<scalar_t>() : nullptr);
  });
  return {dx, dgamma, dbeta, dres};
}

// Both release the GIL: chunks train side by side in threads (engine.py), and the
// other thread's Python work must not wait for these kernels.
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &bn_act_forward, "BatchNorm + residual + ReLU forward (channels_last, CPU)",
        py::call_guard<py::gil_scoped_release>());
  m.def("backward", &bn_act_backward, "BatchNorm + residual + ReLU backward (channels_last, CPU)",
        py::call_guard<py::gil_scoped_release>());
}
