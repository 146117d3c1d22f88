fn main() -> anyhow::Result<()> {
    tessera_node::cli::main()
}
