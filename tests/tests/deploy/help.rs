//! Running a binary's `--help` and reading its options: spellings,
//! environment variable, default, possible values; and its subcommands.
//!
//! This reads clap's long help layout: option headers indented by at most
//! six spaces (`  -n, --calls <CALLS>`, `      --listen <LISTEN>`), their
//! text indented deeper with `[env: NAME=]`, `[default: X]`, `[alias:
//! --other]` (or `[aliases: ...]`) and either
//! `[possible values: a, b]` or a `Possible values:` list of `- a: ...`
//! lines; subcommands listed under `Commands:`.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bound for one `--help` run.
const HELP_TIMEOUT: Duration = Duration::from_secs(20);

/// One option.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OptionHelp {
    /// Every spelling: `-n`, `--calls`.
    pub(crate) spellings: Vec<String>,
    pub(crate) env: Option<String>,
    pub(crate) default: Option<String>,
    pub(crate) possible_values: Vec<String>,
}

/// A parsed `--help`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Help {
    /// Whose help this is: `control-plane serve`.
    pub(crate) command: String,
    pub(crate) text: String,
    pub(crate) options: Vec<OptionHelp>,
    pub(crate) subcommands: Vec<String>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

impl Help {
    /// Parses the long help `text` of `command`.
    pub(crate) fn parse(command: &str, text: &str) -> Self {
        let mut help = Self {
            command: command.to_owned(),
            text: text.to_owned(),
            ..Self::default()
        };
        let mut section = "";
        let mut in_values = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if indent(line) == 0 && trimmed.ends_with(':') {
                section = trimmed;
                continue;
            }
            if trimmed.is_empty() {
                continue;
            }
            if section == "Commands:" && indent(line) <= 6 {
                if let Some(name) = trimmed.split_whitespace().next() {
                    help.subcommands.push(name.to_owned());
                }
                continue;
            }
            if indent(line) <= 6 && trimmed.starts_with('-') {
                in_values = false;
                help.options.push(OptionHelp {
                    spellings: trimmed
                        .split([',', ' '])
                        .filter(|t| t.starts_with('-'))
                        .map(|t| t.split(['=', '[', '<']).next().unwrap_or(t).to_owned())
                        .collect(),
                    ..OptionHelp::default()
                });
                continue;
            }
            let Some(option) = help.options.last_mut() else {
                continue;
            };
            if let Some(rest) = trimmed
                .strip_prefix("[aliases: ")
                .or_else(|| trimmed.strip_prefix("[alias: "))
            {
                // Visible aliases: other spellings of the same option.
                option
                    .spellings
                    .extend(rest.trim_end_matches(']').split(", ").map(|alias| {
                        match alias.starts_with('-') {
                            true => alias.to_owned(),
                            false => format!("--{alias}"),
                        }
                    }));
            } else if let Some(rest) = trimmed.strip_prefix("[env: ") {
                option.env = rest.split('=').next().map(str::to_owned);
            } else if let Some(rest) = trimmed.strip_prefix("[default: ") {
                option.default = Some(rest.trim_end_matches(']').to_owned());
            } else if let Some(rest) = trimmed.strip_prefix("[possible values: ") {
                option.possible_values = rest
                    .trim_end_matches(']')
                    .split(", ")
                    .map(str::to_owned)
                    .collect();
            } else if trimmed == "Possible values:" {
                in_values = true;
            } else if in_values && let Some(item) = trimmed.strip_prefix("- ") {
                let value = item.split(':').next().unwrap_or(item);
                option.possible_values.push(value.to_owned());
            }
        }
        help
    }

    /// The option spelled `spelling` (`--listen`, `-n`).
    pub(crate) fn option(&self, spelling: &str) -> Option<&OptionHelp> {
        self.options
            .iter()
            .find(|o| o.spellings.iter().any(|s| s == spelling))
    }

    /// The option read from environment variable `name`.
    pub(crate) fn option_for_env(&self, name: &str) -> Option<&OptionHelp> {
        self.options.iter().find(|o| o.env.as_deref() == Some(name))
    }

    /// Whether the help names `word` anywhere, as a whole word (for
    /// variables read outside the flags, like `RUST_LOG` or a default taken
    /// from `POD_NAME`).
    pub(crate) fn mentions(&self, word: &str) -> bool {
        let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        self.text.match_indices(word).any(|(at, _)| {
            let before = self.text[..at].chars().next_back();
            let after = self.text[at + word.len()..].chars().next();
            !before.is_some_and(is_word) && !after.is_some_and(is_word)
        })
    }
}

/// Runs `<binary> [subcommand] --help` (cached per process). The binary is
/// found with `tests::bin_path`, which fails with a clear message when it
/// has not been built.
pub(crate) fn help(binary: &str, subcommand: Option<&str>) -> Result<Help, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Help>>> = OnceLock::new();
    let key = match subcommand {
        Some(sub) => format!("{binary} {sub}"),
        None => binary.to_owned(),
    };
    if let Some(help) = CACHE
        .get_or_init(Mutex::default)
        .lock()
        .expect("help cache")
        .get(&key)
    {
        return Ok(help.clone());
    }
    let path = ::tests::bin_path(binary);
    let mut command = tokio::process::Command::new(&path);
    command
        .args(subcommand)
        .arg("--help")
        // `[env: NAME=]` shows the current value; keep it empty.
        .env_clear()
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let output = runtime
        .block_on(async { tokio::time::timeout(HELP_TIMEOUT, command.output()).await })
        .map_err(|_| format!("`{key} --help` did not finish within {HELP_TIMEOUT:?}"))?
        .map_err(|error| format!("failed to run {}: {error}", path.display()))?;
    if !output.status.success() {
        return Err(format!(
            "`{key} --help` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let help = Help::parse(&key, &String::from_utf8_lossy(&output.stdout));
    CACHE
        .get_or_init(Mutex::default)
        .lock()
        .expect("help cache")
        .insert(key, help.clone());
    Ok(help)
}

/// The help that applies to `args` given to `binary`: that of the first
/// argument naming a subcommand, else the binary's own.
pub(crate) fn help_for_args(binary: &str, args: &[String]) -> Result<Help, String> {
    let top = help(binary, None)?;
    match args.iter().find(|a| top.subcommands.contains(a)) {
        Some(sub) if sub != "help" => help(binary, Some(sub)),
        _ => Ok(top),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Usage: tool [OPTIONS] <COMMAND>

Commands:
  serve   Serve things
  help    Print this message

Options:
      --listen <LISTEN>
          Address to listen on.

          [env: TOOL_LISTEN=]
          [default: 0.0.0.0:8080]
          [alias: --bind]

  -n, --calls <CALLS>
          Number of calls. Defaults to POD_NAME_X when set.

      --log-format <LOG_FORMAT>
          Log format. RUST_LOG selects levels.

          Possible values:
          - text: Human-readable lines
          - json: One JSON object per line

          [env: LOG_FORMAT=]
          [default: text]

      --mode <MODE>
          [possible values: a, b]
";

    #[test]
    fn reads_options_env_defaults_and_values() {
        let help = Help::parse("tool", SAMPLE);
        assert_eq!(help.subcommands, ["serve", "help"]);
        let listen = help.option("--listen").expect("--listen");
        assert_eq!(listen.env.as_deref(), Some("TOOL_LISTEN"));
        assert_eq!(listen.default.as_deref(), Some("0.0.0.0:8080"));
        assert_eq!(help.option("--bind"), Some(listen), "an alias");
        assert!(help.option("-n").is_some() && help.option("--calls").is_some());
        let format = help.option_for_env("LOG_FORMAT").expect("LOG_FORMAT");
        assert_eq!(format.possible_values, ["text", "json"]);
        assert_eq!(help.option("--mode").unwrap().possible_values, ["a", "b"]);
        assert!(help.mentions("RUST_LOG"));
        assert!(!help.mentions("POD_NAME"), "POD_NAME_X is another word");
        assert!(help.option("--lsiten").is_none());
    }
}
