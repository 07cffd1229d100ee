//! Generates the greet.Greeter client for tonic 0.13 from the project's own
//! proto, with the vendored `protoc` unless `PROTOC` points elsewhere.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/proto/greeter.proto";
    println!("cargo:rerun-if-changed={proto}");
    println!("cargo:rerun-if-env-changed=PROTOC");
    let mut config = prost_build013::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    tonic_build013::configure()
        .build_server(false)
        .build_transport(false)
        .compile_protos_with_config(config, &[proto], &["../../proto/proto"])?;
    Ok(())
}
