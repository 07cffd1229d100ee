//! The demo executable's command line, and its hidden roles: each runs the
//! real server's command line (same flags, same help, same behaviour).

use std::process::Stdio;
use std::time::Duration;

use clap::CommandFactory;
use nix::sys::signal::Signal;
use tests::{Process, bounded};

const DEMO: &str = env!("CARGO_BIN_EXE_demo");
const LIMIT: Duration = Duration::from_secs(30);

async fn output(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(DEMO)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run demo")
}

#[tokio::test]
async fn help_names_the_options_and_bad_flags_exit_2() {
    bounded(LIMIT, async {
        let help = output(&["--help"]).await;
        assert!(help.status.success());
        let text = String::from_utf8_lossy(&help.stdout);
        for option in ["--quick", "--rate", "--json", "--call-timeout", "--retry"] {
            assert!(text.contains(option), "{option} missing from:\n{text}");
        }
        assert!(!text.contains("__greeter-server"), "roles stay hidden");
        let bad = output(&["--rate", "0"]).await;
        assert_eq!(bad.status.code(), Some(2));
    })
    .await;
}

#[tokio::test]
async fn roles_have_the_real_binaries_command_lines() {
    bounded(LIMIT, async {
        let greeter = output(&["__greeter-server", "--help"]).await;
        assert!(greeter.status.success());
        assert_eq!(
            String::from_utf8_lossy(&greeter.stdout),
            greeter_server::cli::Args::command()
                .render_long_help()
                .to_string()
        );
        let control_plane = output(&["__control-plane", "serve", "--help"]).await;
        assert!(control_plane.status.success());
        let mut command = control_plane::cli::Cli::command();
        // Propagates the global flags (--log-format) into the subcommands.
        command.build();
        let expected = command
            .find_subcommand_mut("serve")
            .expect("serve")
            .render_long_help()
            .to_string();
        assert_eq!(String::from_utf8_lossy(&control_plane.stdout), expected);
        let bad = output(&["__greeter-server", "--bogus"]).await;
        assert_eq!(bad.status.code(), Some(2), "clap's exit code for bad flags");
    })
    .await;
}

#[tokio::test]
async fn the_greeter_server_role_serves_and_drains_like_the_binary() {
    bounded(LIMIT, async {
        let mut server = Process::spawn(
            "role",
            DEMO,
            &[
                "__greeter-server",
                "--listen",
                "127.0.0.1:0",
                "--name",
                "role-1",
                "--drain-delay",
                "100ms",
            ],
        );
        let addr = server.wait_listening().await;
        let mut client =
            proto::greet::greeter_client::GreeterClient::new(tests::channel(addr).await);
        let reply = client
            .say_hello(proto::greet::HelloRequest {
                name: "demo".into(),
                delay_ms: 0,
            })
            .await
            .expect("SayHello")
            .into_inner();
        assert_eq!(reply.served_by, "role-1");
        server.signal(Signal::SIGTERM);
        let status = server.wait_exit(Duration::from_secs(10)).await;
        assert_eq!(status.code(), Some(0), "a clean drain exits 0");
    })
    .await;
}
