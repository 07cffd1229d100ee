//! Command lines of the project's binaries shown in Markdown, and checking
//! one against the binary's `--help`.
//!
//! Looked at: shell code blocks (no language, `sh`, `bash`, `shell`,
//! `console`) and inline code spans. Other blocks (`yaml`, `text`, `json`,
//! ...) hold manifests and output, not commands. A command starts at a
//! token that is a binary's name or a path ending in it (`/usr/local/bin/
//! control-plane`, `./target/release/greeter-server`), including after
//! `kubectl exec ... --` or `docker run <image>`; a name after `cargo ...
//! --bin` starts a command only after the `--` that ends cargo's own
//! arguments. It ends at `|`, `&&`, `;`, `>` or a comment.

use crate::BINARIES;
use crate::help::help_for_args;

/// Splits a shell line into words: whitespace separates, single and double
/// quotes group (and are removed). No variables, no escapes.
pub(crate) fn tokenize(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// One command line of ours in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandLine {
    /// `file:line`.
    pub(crate) place: String,
    pub(crate) binary: String,
    pub(crate) args: Vec<String>,
}

const SHELL_LANGUAGES: [&str; 5] = ["", "sh", "bash", "shell", "console"];
const ENDS: [&str; 9] = ["|", "||", "&&", ";", ">", ">>", "2>", "2>&1", "&"];

fn binary_of(token: &str) -> Option<&'static str> {
    BINARIES.into_iter().find(|name| {
        token == *name
            || ((token.starts_with('/') || token.starts_with("./") || token.starts_with("target/"))
                && token.rsplit('/').next() == Some(name))
    })
}

/// The commands on one (logical) shell line.
fn commands_in(line: &str, place: &str) -> Vec<CommandLine> {
    let line = match line.find(" #") {
        Some(at) => &line[..at],
        None if line.trim_start().starts_with('#') => "",
        None => line,
    };
    let tokens: Vec<String> = tokenize(line.trim_start_matches("$ "))
        .into_iter()
        .map(|t| {
            t.trim_matches(|c| c == '[' || c == ']' || c == '`')
                .to_owned()
        })
        .collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let Some(binary) = binary_of(&tokens[i]) else {
            i += 1;
            continue;
        };
        let mut start = i + 1;
        if i > 0 && matches!(tokens[i - 1].as_str(), "--bin" | "-p" | "--package") {
            // `cargo run --bin X -- args`: X's arguments follow `--`.
            match tokens[start..].iter().position(|t| t == "--") {
                Some(offset)
                    if tokens[start..start + offset]
                        .iter()
                        .all(|t| t.starts_with('-')) =>
                {
                    start += offset + 1;
                }
                _ => {
                    i += 1;
                    continue;
                }
            }
        }
        let end = tokens[start..]
            .iter()
            .position(|t| ENDS.contains(&t.as_str()))
            .map_or(tokens.len(), |offset| start + offset);
        found.push(CommandLine {
            place: place.to_owned(),
            binary: binary.to_owned(),
            args: tokens[start..end].to_vec(),
        });
        i = end;
    }
    found
}

/// Every command line of ours in Markdown `text` of file `file`.
pub(crate) fn extract(file: &str, text: &str) -> Vec<CommandLine> {
    let mut found = Vec::new();
    let mut block: Option<bool> = None; // Some(is_shell) inside a fence
    let mut pending = String::new();
    let mut pending_line = 0;
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None => Some(SHELL_LANGUAGES.contains(&info.trim())),
            };
            continue;
        }
        match block {
            Some(true) => {
                if pending.is_empty() {
                    pending_line = number;
                }
                if let Some(head) = trimmed.strip_suffix('\\') {
                    pending.push_str(head);
                    pending.push(' ');
                    continue;
                }
                pending.push_str(trimmed);
                let place = format!("{file}:{pending_line}");
                found.extend(commands_in(&std::mem::take(&mut pending), &place));
            }
            Some(false) => {}
            None => {
                for span in line.split('`').skip(1).step_by(2) {
                    let tokens = tokenize(span);
                    if tokens.first().is_some_and(|t| binary_of(t).is_some()) {
                        found.extend(commands_in(span, &format!("{file}:{number}")));
                    }
                }
            }
        }
    }
    found
}

/// The flags of `args`: words starting with `-` (up to a lone `--`), with
/// any `=value` cut off.
pub(crate) fn flags(args: &[String]) -> Vec<&str> {
    args.iter()
        .take_while(|a| *a != "--")
        .filter(|a| {
            a.starts_with('-') && a.len() > 1 && !a[1..].starts_with(|c: char| c.is_ascii_digit())
        })
        .map(|a| a.split('=').next().unwrap_or(a))
        .collect()
}

/// Problems with one command line: a subcommand the binary lacks, or a
/// flag its (sub)command's `--help` does not list.
pub(crate) fn check(command: &CommandLine) -> Vec<String> {
    let help = match help_for_args(&command.binary, &command.args) {
        Ok(help) => help,
        Err(error) => return vec![format!("{}: {error}", command.place)],
    };
    let shown = format!("{} {}", command.binary, command.args.join(" "));
    let mut out = Vec::new();
    if let Some(first) = command.args.first()
        && !first.starts_with('-')
        && !first.starts_with('<')
        && !help.subcommands.is_empty()
        && !help.subcommands.contains(first)
        && help.command == command.binary
    {
        out.push(format!(
            "{}: `{shown}`: {} has no subcommand {first:?} (it has {:?})",
            command.place, command.binary, help.subcommands
        ));
    }
    for flag in flags(&command.args) {
        if help.option(flag).is_none() {
            out.push(format!(
                "{}: `{shown}`: `{}` has no option {flag}",
                command.place, help.command
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_commands_where_shells_would_run_them() {
        let doc = "\
Run `greeter-client --target greeter -n 5` or `kubectl logs deploy/greeter-server`.

```sh
cargo run --release --bin greeter-server -- --listen 127.0.0.1:8080
cargo build --release --bin control-plane
kubectl exec deploy/greeter-client -- greeter-client -n 30 --json | jq .ok
control-plane serve \\
  --namespace default   # comment --not-a-flag
```

```yaml
command: [\"control-plane\", \"serve\", \"--bogus\"]
```
";
        let found: Vec<(String, String, Vec<String>)> = extract("doc.md", doc)
            .into_iter()
            .map(|c| (c.place, c.binary, c.args))
            .collect();
        let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            found,
            vec![
                (
                    "doc.md:1".into(),
                    "greeter-client".into(),
                    s(&["--target", "greeter", "-n", "5"])
                ),
                (
                    "doc.md:4".into(),
                    "greeter-server".into(),
                    s(&["--listen", "127.0.0.1:8080"])
                ),
                (
                    "doc.md:6".into(),
                    "greeter-client".into(),
                    s(&["-n", "30", "--json"])
                ),
                (
                    "doc.md:7".into(),
                    "control-plane".into(),
                    s(&["serve", "--namespace", "default"])
                ),
            ]
        );
        assert_eq!(
            flags(&s(&["-n", "5", "--x=1", "-", "--", "--after"])),
            ["-n", "--x"]
        );
    }
}
