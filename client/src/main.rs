fn main() -> std::process::ExitCode {
    tessera_client::cli::main()
}
