//! The `tessera-node` binary under another name, for the integration tests (see Cargo.toml).
fn main() -> anyhow::Result<()> {
    tessera_node::cli::main()
}
