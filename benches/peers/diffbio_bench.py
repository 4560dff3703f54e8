#!/usr/bin/env python3
"""Time DiffBio's losses (JAX, CPU): forward + backward of the real library calls.

Each case is ``jax.jit(jax.value_and_grad(loss, argnums=...))`` over the very calls the
fixture generator uses (shared/reference/generate.py), with gradients w.r.t. the same
inputs as the fixtures:

  nb                   NegativeBinomialLoss()(counts, mu, theta), theta per gene (2000,);
                       grads w.r.t. mu, theta
  zinb                 zinb_negative_log_likelihood(counts, log_rate, log_theta, pi_logit),
                       log_theta per gene (2000,); grads w.r.t. its three parameters.
                       DiffBio's own ZINB (soft zero mask, ~0.5 weight on the zero branch
                       at count 0; the fixtures follow scVI instead, see scvi_bench.py),
                       timed because it is the DiffBio function users would compare with
  vae                  VAELoss(kl_weight=1, "mse")(x, x_recon, mean, logvar);
                       grads w.r.t. x_recon, mean, logvar
  hmm_b64_t1000_s4_e4  HMMLikelihoodLoss(4, 4)(observations (64, 1000));
  hmm_b8_t10000_s8_e4  HMMLikelihoodLoss(8, 4)(observations (8, 10000));
                       grads w.r.t. the module's three raw parameters (nnx.split/merge, so
                       jax.jit sees a pure function of the parameter state)

float32, JAX on CPU (JAX_PLATFORMS=cpu is set). Prints one JSON object per line.
Run with the Python >= 3.12 environment that has diffbio 0.1.9 (see README.md).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

SUITE = "diffbio"


def _setup():
    import importlib.metadata as md

    import jax

    jax.config.update("jax_enable_x64", False)
    versions = {"diffbio": md.version("diffbio"), "jax": jax.__version__,
                "jaxlib": md.version("jaxlib"), "flax": md.version("flax"),
                "python": sys.version.split()[0]}
    # Bring the runtime up (thread pools, first compilation) outside any measurement.
    jax.block_until_ready(jax.jit(lambda a: (a * a).sum())(jax.numpy.ones((8, 8))))
    return versions


def _jax_case(name, shape, call, fn, argnums, inputs, args):
    """Time jax.jit(jax.value_and_grad(fn, argnums)) on inputs (numpy arrays)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    versions = _setup()
    dev = [jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in inputs]
    vg = jax.jit(jax.value_and_grad(fn, argnums=argnums))
    ma = vg.lower(*dev).compile().memory_analysis()
    xla = None
    if ma is not None:
        xla = round((ma.argument_size_in_bytes + ma.output_size_in_bytes
                     + ma.temp_size_in_bytes - ma.alias_size_in_bytes) / 2**20, 2)
        xla_temp = round(ma.temp_size_in_bytes / 2**20, 2)

    def step():
        return jax.block_until_ready(vg(*dev))

    loss, _ = step()  # compiles
    if not C.finite(loss):
        raise RuntimeError(f"{name}: non-finite loss {loss}")
    rec = C.run_case(
        {"suite": SUITE, "name": name, "shape": shape, "library": "diffbio (JAX, CPU)",
         "call": call, "dtype": "float32"},
        step, args,
        extra={"versions": versions, "loss": float(loss),
               "xla_buffers_mb": xla, "xla_temp_mb": xla_temp if ma is not None else None,
               "devices": str(jax.devices()), **C.env_threads()},
    )
    return rec


def case_nb(args):
    from diffbio.losses import NegativeBinomialLoss

    counts, mu, theta, _ = C.scrna_nb(seed=1)
    nb = NegativeBinomialLoss(eps=1e-8)

    def fn(mu_, theta_, counts_):
        return nb(counts_, mu_, theta_)

    return _jax_case("nb", "512x2000", "NegativeBinomialLoss(eps=1e-8)(counts, mu, theta[2000]); "
                     "jit(value_and_grad) wrt mu, theta", fn, (0, 1), [mu, theta, counts], args)


def case_zinb(args):
    import numpy as np
    from diffbio.losses.statistical_losses import zinb_negative_log_likelihood

    counts, mu, theta, pi_logits = C.scrna_nb(seed=1)
    log_rate, log_theta = C.f32(np.log(mu)), C.f32(np.log(theta))

    def fn(lr, lt, pl, counts_):
        return zinb_negative_log_likelihood(counts_, lr, lt, pl)

    return _jax_case("zinb", "512x2000",
                     "zinb_negative_log_likelihood(counts, log_rate, log_theta[2000], pi_logit); "
                     "jit(value_and_grad) wrt log_rate, log_theta, pi_logit",
                     fn, (0, 1, 2), [log_rate, log_theta, pi_logits, counts], args)


def case_vae(args):
    from diffbio.losses import VAELoss

    x, x_recon, mean, logvar = C.vae_inputs(seed=2)
    vl = VAELoss(kl_weight=1.0, reconstruction_type="mse")

    def fn(xr, m, lv, x_):
        return vl(x_, xr, m, lv)

    return _jax_case("vae", "512x2000 + latent 512x10",
                     "VAELoss(kl_weight=1.0, reconstruction_type='mse')(x, x_recon, mean, logvar); "
                     "jit(value_and_grad) wrt x_recon, mean, logvar",
                     fn, (0, 1, 2), [x_recon, mean, logvar, x], args)


def _hmm_case(name, B, T, S, E, seed, args):
    import jax
    from diffbio.losses import HMMLikelihoodLoss
    from flax import nnx

    li, lt, le, obs = C.hmm_inputs(seed, B, T, S, E)
    model = HMMLikelihoodLoss(n_states=S, n_emissions=E, rngs=nnx.Rngs(0))
    model.log_initial = nnx.Param(jax.numpy.asarray(li))
    model.log_transitions = nnx.Param(jax.numpy.asarray(lt))
    model.log_emissions = nnx.Param(jax.numpy.asarray(le))
    graphdef, state = nnx.split(model)

    def fn(state_, obs_):
        return nnx.merge(graphdef, state_)(obs_)

    return _jax_case(name, f"B={B} T={T} S={S} E={E}",
                     f"HMMLikelihoodLoss(n_states={S}, n_emissions={E})(observations); "
                     "jit(value_and_grad) wrt the nnx parameter state (log_initial, "
                     "log_transitions, log_emissions)",
                     fn, 0, [state, obs], args)


def case_hmm_small(args):
    return _hmm_case("hmm_b64_t1000_s4_e4", 64, 1000, 4, 4, 3, args)


def case_hmm_long(args):
    return _hmm_case("hmm_b8_t10000_s8_e4", 8, 10000, 8, 4, 4, args)


CASES = {
    "nb": case_nb,
    "zinb": case_zinb,
    "vae": case_vae,
    "hmm_b64_t1000_s4_e4": case_hmm_small,
    "hmm_b8_t10000_s8_e4": case_hmm_long,
}


def main():
    p = C.add_common_args(argparse.ArgumentParser(description=__doc__,
                                                  formatter_class=argparse.RawDescriptionHelpFormatter))
    args = p.parse_args()
    return C.drive(CASES, args, os.path.abspath(__file__), SUITE)


if __name__ == "__main__":
    sys.exit(main())
