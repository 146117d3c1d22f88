//! The `tessera` binary under another name, for the integration tests (see Cargo.toml).
fn main() -> std::process::ExitCode {
    tessera_client::cli::main()
}
