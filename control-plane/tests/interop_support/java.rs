//! grpc-java: `tests/interop/java` (a Maven project; pom.xml pins every
//! version) packaged once with `mvn` into `target/interop-java/<key>/`,
//! where the key hashes the project's files, so later runs reuse the jar.
//! Maven's local repository (`~/.m2`) keeps the downloaded artifacts.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::sync::OnceCell;

use super::{content_key, found, run_step, sources, target_dir};

/// The grpc-java release the interop tests use (pinned in pom.xml).
pub const GRPC_JAVA: &str = "io.grpc:grpc-xds 1.85.1";
/// Upper bound for downloading the artifacts and packaging the client.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);
const FILES: [&str; 2] = ["pom.xml", "src/main/java/interop/XdsGreeterClient.java"];

/// The grpc-java client's jar (its dependencies in `lib/` beside it), built
/// on first use.
///
/// # Panics
///
/// When `java` or `mvn` is missing or the build fails, saying what to
/// install.
pub async fn client() -> PathBuf {
    static CLIENT: OnceCell<PathBuf> = OnceCell::const_new();
    CLIENT.get_or_init(build).await.clone()
}

async fn build() -> PathBuf {
    let project = sources().join("java");
    let dir = target_dir()
        .join("interop-java")
        .join(content_key(&project, &FILES));
    let jar = dir.join("xds-greeter-client.jar");
    let marker = dir.join(".built");
    if marker.exists() && jar.exists() {
        return jar;
    }
    let skip = "or set SKIP_JAVA_INTEROP=1 to skip this test";
    assert!(
        found("java", &["-version"]).await,
        "the grpc-java interop test needs a Java runtime (17 or newer), and `java` is not on \
         PATH: install a JDK 17, {skip}"
    );
    let mvn = std::env::var("INTEROP_MVN").unwrap_or_else(|_| "mvn".to_owned());
    assert!(
        found(&mvn, &["--version"]).await,
        "the grpc-java interop test builds its client with Maven (3.8 or newer), and `{mvn}` is \
         not on PATH: install Maven and a JDK 17 (or point INTEROP_MVN at mvn), {skip}"
    );
    let started = Instant::now();
    run_step(
        Command::new(&mvn)
            .args(["--batch-mode", "--quiet", "package"])
            .arg(format!("-Dinterop.build.dir={}", dir.display()))
            .current_dir(&project),
        BUILD_TIMEOUT,
        &format!(
            "building the grpc-java client in {} with `{mvn} package` (needs Maven Central, or \
             the artifacts in ~/.m2)",
            project.display()
        ),
    )
    .await;
    std::fs::write(&marker, b"ok").expect("write the build marker");
    eprintln!(
        "built the grpc-java interop client ({GRPC_JAVA}) in {:.1?}",
        started.elapsed()
    );
    jar
}
