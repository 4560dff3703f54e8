//! Parity of diffbio-burn with the reference fixtures on `Autodiff<NdArray<f32>>` (and
//! `Autodiff<Wgpu>` with the `wgpu` feature), plus self-checks of the harness. The float64 run
//! is `parity_f64.rs`. See `parity_harness/mod.rs` for the fixture handling.

use std::collections::BTreeMap;

use burn::backend::{Autodiff, NdArray};
use serde_json::Value;

use crate::common::{CloseReport, compare};
use crate::parity_harness::*;

/// `parity_test!(name, Backend, "label", path)` defines a `#[test]` running every fixture on
/// `Backend` (an autodiff backend) with the given implementation path.
macro_rules! parity_test {
    ($(#[$attr:meta])* $name:ident, $backend:ty, $label:expr, $path:expr) => {
        $(#[$attr])*
        #[test]
        fn $name() {
            parity::<$backend>($label, $path);
        }
    };
}

parity_test!(
    parity_ndarray,
    Autodiff<NdArray<f32>>,
    "ndarray-f32",
    Impl::Fast
);
parity_test!(
    parity_ndarray_generic_path,
    Autodiff<NdArray<f32>>,
    "ndarray-f32-generic",
    Impl::Generic
);
parity_test!(
    #[cfg(feature = "wgpu")]
    parity_wgpu,
    Autodiff<burn::backend::Wgpu>,
    "wgpu",
    Impl::Generic
);

// ---------------------------------------------------------------------------------------------
// Self-checks of the harness
// ---------------------------------------------------------------------------------------------

type SelfCheckBackend = Autodiff<NdArray<f32>>;

fn run_self(fx: &Fixture) -> Result<CloseReport, String> {
    run_case_caught::<SelfCheckBackend>(fx, &Default::default(), Impl::Fast)
}

fn template(name: &str) -> Fixture {
    load(&default_fixture_dir().join(name))
        .fixture
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A value that the tolerance cannot absorb.
fn corrupt(e: f64, tol: Tolerance) -> f64 {
    e + 10.0 * (tol.atol + tol.rtol * e.abs()) + 1e-3
}

/// For the first fixture of each function: if it passes, every single corrupted expected
/// output element and gradient element, and a wrong element count, must make it fail.
#[test]
fn harness_rejects_corrupted_expectations() {
    let cases = load_all();
    let mut firsts: BTreeMap<String, Fixture> = BTreeMap::new();
    for case in &cases {
        if let Ok(fx) = &case.fixture {
            firsts
                .entry(fx.function.clone())
                .or_insert_with(|| fx.clone());
        }
    }
    let mut verified = Vec::new();
    for (function, fx) in &firsts {
        if let Err(e) = run_self(fx) {
            println!("self-check skips {function}: {} fails clean ({e})", fx.case);
            continue;
        }
        let tol = fx.tolerance;
        let mut variants: Vec<(String, Fixture)> = Vec::new();
        for (name, out) in &fx.outputs {
            for i in [0, out.data.len() - 1] {
                let mut bad = fx.clone();
                let v = &mut bad.outputs.get_mut(name).unwrap().data[i];
                *v = corrupt(*v, tol);
                variants.push((format!("output {name}[{i}]"), bad));
            }
            let mut bad = fx.clone();
            let o = bad.outputs.get_mut(name).unwrap();
            o.data.push(0.0);
            o.shape = vec![o.data.len()];
            variants.push((format!("output {name} with an extra element"), bad));
        }
        for (name, g) in &fx.grads.as_ref().unwrap().wrt {
            for i in [0, g.data.len() - 1] {
                let mut bad = fx.clone();
                let v = &mut bad.grads.as_mut().unwrap().wrt.get_mut(name).unwrap().data[i];
                *v = corrupt(*v, tol);
                variants.push((format!("d/d{name}[{i}]"), bad));
            }
        }
        for (what, bad) in variants {
            assert!(
                run_self(&bad).is_err(),
                "{}: corrupted {what} was not detected",
                fx.case
            );
        }
        verified.push(function.clone());
    }
    println!("self-check verified: {verified:?}");
    assert!(
        !verified.is_empty(),
        "no function passes its first fixture: the corruption self-check is vacuous"
    );
}

/// Malformed fixtures fail before the loss runs, whatever the state of the losses.
#[test]
fn harness_rejects_malformed_fixtures() {
    let base = template("nb_basic_3x4.json");
    type Mutation = (&'static str, Box<dyn Fn(&mut Fixture)>);
    let mutations: Vec<Mutation> = vec![
        (
            "unknown function",
            Box::new(|f| f.function = "poisson".into()),
        ),
        (
            "unknown input",
            Box::new(|f| {
                let extra = f.inputs["mu"].clone();
                f.inputs.insert("size_factors".into(), extra);
            }),
        ),
        (
            "missing input",
            Box::new(|f| {
                f.inputs.remove("theta");
            }),
        ),
        (
            "unknown output",
            Box::new(|f| {
                let extra = f.outputs["loss"].clone();
                f.outputs.insert("elbo".into(), extra);
            }),
        ),
        (
            "unknown config key",
            Box::new(|f| {
                f.config.insert("epsilon".into(), Value::from(1e-8));
            }),
        ),
        (
            "input length vs shape",
            Box::new(|f| {
                f.inputs.get_mut("mu").unwrap().data.pop();
            }),
        ),
        (
            "output length vs shape",
            Box::new(|f| {
                f.outputs.get_mut("nll").unwrap().shape = vec![4, 3, 1, 2];
            }),
        ),
        (
            "grads.of not an output",
            Box::new(|f| f.grads.as_mut().unwrap().of = "total".into()),
        ),
        (
            "grads.wrt not an input",
            Box::new(|f| {
                let g = f.grads.as_mut().unwrap();
                let extra = g.wrt["mu"].clone();
                g.wrt.insert("pi_logits".into(), extra);
            }),
        ),
        (
            "grads.wrt shape",
            Box::new(|f| {
                f.grads
                    .as_mut()
                    .unwrap()
                    .wrt
                    .get_mut("theta")
                    .unwrap()
                    .shape = vec![2, 2];
            }),
        ),
        (
            "missing grads",
            Box::new(|f| {
                f.grads = None;
            }),
        ),
        (
            "grads.of other than the schema's",
            Box::new(|f| f.grads.as_mut().unwrap().of = "nll".into()),
        ),
        (
            "grads.wrt missing an input the schema lists",
            Box::new(|f| {
                f.grads.as_mut().unwrap().wrt.remove("theta");
            }),
        ),
        (
            "grads.wrt of an input the schema does not list",
            Box::new(|f| {
                let g = f.grads.as_mut().unwrap();
                let extra = g.wrt["mu"].clone();
                g.wrt.insert("counts".into(), extra);
            }),
        ),
        (
            "missing output",
            Box::new(|f| {
                f.outputs.remove("nll");
            }),
        ),
        (
            "rtol above the schema's ceiling",
            Box::new(|f| f.tolerance.rtol = 1e-2),
        ),
        ("empty reference", Box::new(|f| f.reference = " ".into())),
        (
            "output shape transposed",
            Box::new(|f| f.outputs.get_mut("nll").unwrap().shape = vec![4, 3]),
        ),
        (
            "output shape flattened",
            Box::new(|f| f.outputs.get_mut("nll").unwrap().shape = vec![12]),
        ),
        (
            "scalar output with rank 2",
            Box::new(|f| f.outputs.get_mut("loss").unwrap().shape = vec![1, 1]),
        ),
        (
            "non-integer i64 input",
            Box::new(|f| {
                let inp = f.inputs.get_mut("counts").unwrap();
                inp.dtype = "i64".into();
            }),
        ),
        (
            "unknown dtype",
            Box::new(|f| f.inputs.get_mut("counts").unwrap().dtype = "f16".into()),
        ),
        (
            "wrong rank",
            Box::new(|f| {
                let inp = f.inputs.get_mut("mu").unwrap();
                inp.shape = vec![inp.data.len()];
            }),
        ),
    ];
    assert!(run_self(&base).is_ok(), "the unmutated template must pass");
    for (what, mutate) in mutations {
        let mut fx = base.clone();
        mutate(&mut fx);
        let result = run_self(&fx);
        assert!(result.is_err(), "{what}: malformed fixture was accepted");
        println!("{what}: {}", result.unwrap_err());
    }
    // A panicking case is a failure with its message (here: invalid eps panics in `init`).
    let mut fx = base.clone();
    fx.config.insert("eps".into(), Value::from(-1.0));
    let err = run_self(&fx).unwrap_err();
    assert!(err.starts_with("panicked: "), "{err}");
}

/// Writes `value` as `<name>.json` in a fresh temporary directory and loads it.
fn load_json(name: &str, value: &Value) -> (std::path::PathBuf, Result<Fixture, String>) {
    let dir = std::env::temp_dir().join(format!("parity-keys-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string(value).unwrap()).unwrap();
    let loaded = load(&path).fixture;
    std::fs::remove_dir_all(&dir).unwrap();
    (path, loaded)
}

/// An unknown key anywhere in a fixture is a load error naming the file and the key; the
/// schema's optional keys load.
#[test]
fn harness_rejects_unknown_keys() {
    let text = std::fs::read_to_string(default_fixture_dir().join("nb_basic_3x4.json")).unwrap();
    let base: Value = serde_json::from_str(&text).unwrap();
    type Edit = (&'static str, &'static str, fn(&mut Value));
    let edits: Vec<Edit> = vec![
        ("top_level", "tolerances", |v| {
            v["tolerances"] = Value::from(1e-3);
        }),
        ("input", "units", |v| {
            v["inputs"]["mu"]["units"] = Value::from("counts");
        }),
        ("output", "dtype", |v| {
            v["outputs"]["nll"]["dtype"] = Value::from("f64");
        }),
        ("grads", "wrt_all", |v| {
            v["grads"]["wrt_all"] = Value::from(true);
        }),
        ("grads_wrt", "scale", |v| {
            v["grads"]["wrt"]["mu"]["scale"] = Value::from(2.0);
        }),
        ("tolerance", "rtol_grad", |v| {
            v["tolerance"]["rtol_grad"] = Value::from(1e-3);
        }),
    ];
    for (what, key, edit) in edits {
        let mut v = base.clone();
        edit(&mut v);
        let (path, loaded) = load_json(what, &v);
        let err = loaded.expect_err(&format!("{what}: unknown key {key:?} was accepted"));
        assert!(
            err.contains(&path.display().to_string()) && err.contains(key),
            "{what}: the error must name the file and the key: {err}"
        );
        println!("{what}: {err}");
    }
    // Optional keys of the schema load; a missing required one does not.
    let mut v = base.clone();
    v["note"] = Value::from("delicate");
    let (_, loaded) = load_json("note", &v);
    assert!(run_self(&loaded.unwrap()).is_ok());
    let mut v = base.clone();
    v.as_object_mut().unwrap().remove("reference");
    let (_, loaded) = load_json("no_reference", &v);
    assert!(loaded.unwrap_err().contains("reference"));
    // A missing `grads` section loads but fails the case, naming what the schema requires.
    let mut v = base;
    v.as_object_mut().unwrap().remove("grads");
    let (_, loaded) = load_json("no_grads", &v);
    let err = run_self(&loaded.unwrap()).unwrap_err();
    assert!(err.contains("missing \"grads\""), "{err}");
}

/// Output shapes are compared, with Burn's `[1]` standing for a fixture scalar `[]`.
#[test]
fn output_shapes_are_compared() {
    assert!(shape_matches(&[], &[1]));
    assert!(shape_matches(&[3, 4], &[3, 4]));
    assert!(!shape_matches(&[3, 4], &[4, 3]));
    assert!(!shape_matches(&[12], &[3, 4]));
    assert!(!shape_matches(&[1], &[]));
    assert!(!shape_matches(&[], &[1, 1]));
    assert!(!shape_matches(&[3], &[3, 1]));
}

#[test]
fn fixture_dirs_from_env() {
    let fixtures = default_fixture_dir();
    let here = fixtures.display().to_string();
    assert_eq!(fixture_dirs(None).unwrap(), vec![fixtures.clone()]);
    assert_eq!(fixture_dirs(Some("")).unwrap(), vec![fixtures.clone()]);
    let listed = fixture_dirs(Some(&format!("::{here}:"))).unwrap();
    assert_eq!(listed, vec![fixtures.clone(), fixtures.clone()]);
    let missing = format!("{here}/does-not-exist");
    let err = fixture_dirs(Some(&format!("{here}:{missing}"))).unwrap_err();
    assert!(err.contains("does-not-exist"), "{err}");
    assert!(fixture_files(&fixtures).unwrap().len() >= 20);
    let empty = std::env::temp_dir().join(format!("parity-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let result = fixture_files(&empty);
    std::fs::remove_dir(&empty).unwrap();
    assert!(result.is_err());
}

#[test]
fn compare_is_allclose() {
    assert!(compare(&[1.0, 2.0], &[1.0, 2.0 + 1e-5], 1e-5, 1e-4).is_ok());
    assert!(compare(&[1.0], &[1.0 + 1e-3], 1e-5, 1e-4).is_err());
    assert!(compare(&[f64::NAN], &[0.0], 1.0, 1.0).is_err());
    assert!(compare(&[f64::INFINITY], &[1.0], 1.0, 1.0).is_err());
    assert!(compare(&[1.0], &[1.0, 2.0], 1.0, 1.0).is_err());
    let r = compare(&[1.5, -2.0], &[1.0, -2.0], 1.0, 0.0).unwrap();
    assert_eq!(r.max_abs_err, 0.5);
    assert_eq!(r.max_rel_err, 0.5);
}
