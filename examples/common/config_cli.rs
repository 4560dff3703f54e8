//! Command-line flags derived from a `#[derive(Config)]` training config: every leaf of the
//! config's JSON becomes a flag whose default is the config's own, so no default is written
//! twice and the saved `config.json` holds every setting of the run.
//!
//! A leaf `epochs` becomes `--epochs`; a nested leaf is named by its last key when that is
//! unique (`model.n_hidden` → `--n-hidden`) and by its whole path otherwise
//! (`optimizer.beta_1` → `--optimizer.beta-1`). `--config FILE` starts from a saved config
//! instead of the defaults; flags given on the command line override either.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::config::Config;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use serde_json::Value;

/// The flag of each leaf path (`["model", "n_hidden"]`) of `defaults`.
fn flags(defaults: &Value) -> Vec<(Vec<String>, String, Value)> {
    fn leaves(value: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    path.push(key.clone());
                    leaves(v, path, out);
                    path.pop();
                }
            }
            leaf => out.push((path.clone(), leaf.clone())),
        }
    }
    let mut all = Vec::new();
    leaves(defaults, &mut Vec::new(), &mut all);
    let mut uses: HashMap<String, usize> = HashMap::new();
    for (path, _) in &all {
        *uses
            .entry(path.last().cloned().unwrap_or_default())
            .or_default() += 1;
    }
    all.into_iter()
        .map(|(path, default)| {
            let last = path.last().cloned().unwrap_or_default();
            let name = if uses[&last] == 1 {
                last
            } else {
                path.join(".")
            };
            (path, name.replace('_', "-"), default)
        })
        .collect()
}

/// Adds `--config FILE` and one flag per leaf of `C::default`-like `defaults` to `command`.
pub fn with_config_flags<C: Config>(command: Command, defaults: &C) -> Command {
    let json = serde_json::to_value(defaults).expect("a Config serialises to JSON");
    let mut command = command.args_override_self(true).arg(
        Arg::new("config")
            .long("config")
            .value_name("FILE")
            .value_parser(clap::value_parser!(PathBuf))
            .help("Start from a saved training config (config.json of an earlier run)")
            .help_heading("Training config"),
    );
    for (path, flag, default) in flags(&json) {
        let default_text = match &default {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        command = command.arg(
            Arg::new(flag.clone())
                .long(flag)
                .value_name("VALUE")
                .help(format!("{} [default: {default_text}]", path.join(".")))
                .help_heading("Training config"),
        );
    }
    command
}

/// The config the command line asks for: `--config FILE` or `defaults`, with each flag given
/// applied on top (values parsed as JSON, or taken as strings).
pub fn config_from_matches<C: Config>(matches: &ArgMatches, defaults: &C) -> Result<C> {
    let mut json = match matches.get_one::<PathBuf>("config") {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a JSON config", file.display()))?
        }
        None => serde_json::to_value(defaults)?,
    };
    for (path, flag, default) in flags(&serde_json::to_value(defaults)?) {
        let Some(text) = matches.get_one::<String>(&flag) else {
            continue;
        };
        let value = match serde_json::from_str::<Value>(text) {
            Ok(v) if !default.is_string() => v,
            _ => Value::String(text.clone()),
        };
        if std::mem::discriminant(&value) != std::mem::discriminant(&default) && !default.is_null()
        {
            bail!("--{flag} {text}: expected a value like {default}");
        }
        let mut slot = &mut json;
        for key in &path {
            slot = slot.get_mut(key).with_context(|| {
                format!("--{flag}: the loaded config has no `{}`", path.join("."))
            })?;
        }
        *slot = value;
    }
    serde_json::from_value(json).context("the training config does not fit its type")
}

/// `parsed`, or, for a command-line error (or `--help`/`--version`), clap's message and exit
/// code, as a derived `Parser::parse` would.
pub fn exit_on_usage_error<T>(parsed: Result<T>) -> Result<T> {
    parsed.or_else(|e| match e.downcast::<clap::Error>() {
        Ok(usage) => usage.exit(),
        Err(e) => Err(e),
    })
}

/// The command line of an example `name`: its run arguments `A` (a clap `Args` struct) plus
/// one flag per leaf of the training config, starting from `defaults`.
pub fn parse_run<A: Args + FromArgMatches, C: Config>(
    name: &'static str,
    about: &'static str,
    defaults: &C,
    argv: impl IntoIterator<Item = String>,
) -> Result<(A, C)> {
    let command = with_config_flags(A::augment_args(Command::new(name)), defaults).about(about);
    let matches = command.try_get_matches_from(argv)?;
    Ok((
        A::from_arg_matches(&matches)?,
        config_from_matches(&matches, defaults)?,
    ))
}
