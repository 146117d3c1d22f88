//! The `tessera-node` binary under another name, for the integration tests (see Cargo.toml).
fn main() -> std::process::ExitCode {
    tessera_node::cli::main()
}
