fn main() -> std::process::ExitCode {
    tessera_node::cli::main()
}
