//! Checks of each container against the binary it runs: the command is an
//! installed binary, every environment variable and flag is one the
//! binary reads (per its `--help`), values fit, pod identity comes from the
//! downward API, and the termination grace period covers the binary's own
//! drain.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::commands::flags;
use crate::help::Help;

/// Seconds the kubelet waits after SIGTERM when the pod does not say.
const DEFAULT_TERMINATION_GRACE: i64 = 30;

/// The binary a container runs and its arguments (command after the
/// binary, then args), given the binaries the image installs (name →
/// path).
pub(crate) fn binary_of(
    container: &Container,
    installed: &BTreeMap<String, String>,
) -> Result<(String, Vec<String>), String> {
    let command = container.command.clone().unwrap_or_default();
    let Some((program, rest)) = command.split_first() else {
        return Err(format!(
            "container {} has no command; the image holds several binaries, so each container names one",
            container.name
        ));
    };
    let Some((name, _)) = installed.iter().find(|(_, path)| *path == program) else {
        return Err(format!(
            "container {} runs {program}, which the image does not install (it has {:?})",
            container.name,
            installed.values().collect::<Vec<_>>()
        ));
    };
    let mut args = rest.to_vec();
    args.extend(container.args.clone().unwrap_or_default());
    Ok((name.clone(), args))
}

/// The downward-API field each pod identity variable must come from.
const DOWNWARD: [(&str, &str); 2] = [
    ("POD_NAME", "metadata.name"),
    ("POD_NAMESPACE", "metadata.namespace"),
];

/// The value a flag gets: from `args`, else the container's environment,
/// else the help's default.
fn effective(help: &Help, container: &Container, args: &[String], flag: &str) -> Option<String> {
    let option = help.option(flag)?;
    for (i, arg) in args.iter().enumerate() {
        if let Some(value) = arg.strip_prefix(&format!("{flag}=")) {
            return Some(value.to_owned());
        }
        if arg == flag {
            return args.get(i + 1).cloned();
        }
    }
    let from_env = option.env.as_ref().and_then(|name| {
        container
            .env
            .iter()
            .flatten()
            .find(|e| &e.name == name)
            .and_then(|e| e.value.clone())
    });
    from_env.or_else(|| option.default.clone())
}

fn duration(
    help: &Help,
    container: &Container,
    args: &[String],
    flag: &str,
) -> Result<Duration, String> {
    match effective(help, container, args, flag) {
        None => Ok(Duration::ZERO),
        Some(text) => humantime::parse_duration(&text)
            .map_err(|error| format!("{flag} value {text:?} is not a duration: {error}")),
    }
}

/// Problems of `container` (in `pod`) running a binary whose help is
/// `help`, with arguments `args`.
pub(crate) fn against_help(
    container: &Container,
    pod: &PodSpec,
    args: &[String],
    help: &Help,
) -> Vec<String> {
    let mut out = Vec::new();
    let cmd = &help.command;
    for env in container.env.iter().flatten() {
        let name = env.name.as_str();
        let option = help.option_for_env(name);
        if option.is_none() && !help.mentions(name) {
            out.push(format!(
                "sets {name}, which `{cmd}` does not read (its --help names no such variable)"
            ));
        }
        if let (Some(option), Some(value)) = (option, &env.value)
            && !option.possible_values.is_empty()
            && !option.possible_values.contains(value)
        {
            out.push(format!(
                "sets {name}={value}, but `{cmd}` accepts only {:?}",
                option.possible_values
            ));
        }
        if env.value.is_none() && env.value_from.is_none() {
            out.push(format!("{name} has neither value nor valueFrom"));
        }
        if let Some((_, path)) = DOWNWARD.iter().find(|(n, _)| *n == name) {
            let field = env
                .value_from
                .as_ref()
                .and_then(|v| v.field_ref.as_ref())
                .map(|f| f.field_path.as_str());
            if field != Some(*path) {
                out.push(format!(
                    "{name} must come from the downward API (fieldRef {path}), not {:?}",
                    env.value.as_deref().or(field)
                ));
            }
        }
    }
    for flag in flags(args) {
        if help.option(flag).is_none() {
            out.push(format!("passes {flag}, which `{cmd}` does not have"));
        }
    }
    if help.option("--grace").is_some() {
        match (
            duration(help, container, args, "--drain-delay"),
            duration(help, container, args, "--grace"),
        ) {
            (Ok(drain), Ok(grace)) => {
                let period = pod
                    .termination_grace_period_seconds
                    .unwrap_or(DEFAULT_TERMINATION_GRACE);
                let needed = drain + grace;
                if u64::try_from(period).unwrap_or(0) <= needed.as_secs() {
                    out.push(format!(
                        "terminationGracePeriodSeconds {period} is not longer than the drain delay \
                         plus grace ({needed:?}): the kubelet would kill calls still allowed to finish"
                    ));
                }
                if let Some(probe) = &container.liveness_probe {
                    let window = i64::from(probe.period_seconds.unwrap_or(10))
                        * i64::from(probe.failure_threshold.unwrap_or(3));
                    if window <= period {
                        out.push(format!(
                            "the liveness probe gives up after {window}s of NOT_SERVING, within the \
                             {period}s termination grace period: it would cut a drain short"
                        ));
                    }
                }
            }
            (Err(e), _) | (_, Err(e)) => out.push(e),
        }
    }
    out
}
