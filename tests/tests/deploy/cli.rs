//! The binaries' own help: wrapped for a terminal, every subcommand's too;
//! and the documents' `greeter-client diagnose` command lines, checked
//! against `diagnose --help` (a check shown to bite).

use crate::BINARIES;
use crate::commands::{self, CommandLine};
use crate::help::help;
use crate::{assert_complains, assert_no_problems};

/// clap wraps help to the terminal, at most this wide (without a terminal,
/// as here, to this width).
const HELP_WIDTH: usize = 100;

/// Every binary's `--help`, and every subcommand's.
#[test]
fn every_help_is_wrapped_to_the_terminal() {
    let mut problems = Vec::new();
    for binary in BINARIES {
        let top = help(binary, None).unwrap_or_else(|error| panic!("{error}"));
        let mut all = vec![top.clone()];
        for sub in top.subcommands.iter().filter(|s| *s != "help") {
            all.push(help(binary, Some(sub)).unwrap_or_else(|error| panic!("{error}")));
        }
        for page in all {
            for (number, line) in page.text.lines().enumerate() {
                let width = line.chars().count();
                if width > HELP_WIDTH {
                    problems.push(format!(
                        "`{} --help` line {}: {width} characters: {line:.60}...",
                        page.command,
                        number + 1
                    ));
                }
            }
        }
    }
    assert_no_problems("help wider than a terminal", &problems);
}

/// The documents show `diagnose`, and each such line passes.
#[test]
fn documented_diagnose_commands_exist() {
    let lines: Vec<CommandLine> = crate::docs::command_lines()
        .into_iter()
        .filter(|c| c.binary == "greeter-client" && c.args.first().is_some_and(|a| a == "diagnose"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|c| c.place.starts_with("docs/troubleshooting.md")),
        "docs/troubleshooting.md shows no `greeter-client diagnose` command"
    );
    let problems: Vec<String> = lines.iter().flat_map(commands::check).collect();
    assert_no_problems(
        "greeter-client diagnose commands in the documents",
        &problems,
    );
}

/// Needs the greeter-client binary.
#[test]
fn diagnose_commands_are_checked_against_diagnose_help() {
    let doc = "```sh\ngreeter-client diagnose greeter:80 --call /greet.Greeter/SayHello --bogus\n\
               greeter-client diagnos greeter:80\n\
               greeter-client diagnose greeter:80 -n 5\n```\n";
    let problems: Vec<String> = commands::extract("doc.md", doc)
        .iter()
        .flat_map(commands::check)
        .collect();
    assert_complains(&problems, &["doc.md:2", "has no option --bogus"]);
    assert_complains(&problems, &["doc.md:3", "no subcommand \"diagnos\""]);
    // A flag of the call mode is not one of diagnose's.
    assert_complains(
        &problems,
        &["doc.md:4", "greeter-client diagnose", "has no option -n"],
    );
    let fine = "```sh\ngreeter-client diagnose greeter:80 --control-plane http://cp:18000 \
                --health-service greet.Greeter --json\n\
                greeter-client --target greeter -n 5\n```\n";
    let problems: Vec<String> = commands::extract("doc.md", fine)
        .iter()
        .flat_map(commands::check)
        .collect();
    assert_no_problems("unbroken commands", &problems);
}
